//! Changing hooks safely, through the real server and CLI: canary rollouts (a version for a
//! share of clients chosen by client id, withdrawn automatically when it fails more often than
//! the active version, shown by the API, promoted in one call) and shadow runs (a candidate
//! beside the active version on sampled requests, never changing a token, its differences in
//! the hook log, its queue bounded).

use std::time::Duration;

use hookd::registry::canary::client_bucket;
use hookd_tests::{
    API, HOSTILE, SEED, Seeded, TestServer, admin_cli, admin_token, assert_management_error, call,
    payload, seed, send, token_form, upload, wasm,
};
use http::Method;
use serde_json::{Value, json};

/// The audience for which the hostile guest reports a failure (it echoes on any other).
const FAILING_AUDIENCE: &str = "fail";
/// The audience for which the hostile guest sleeps until its time limit.
const SLEEPING_AUDIENCE: &str = "sleep";
const SEED_CLAIM: &str = "https://foo.com/claim";
/// A claim only the hostile guest's echo sets.
const HOSTILE_CLAIM: &str = "audience_seen";

/// A server whose enabled hook runs the seed as its active version and has the hostile guest
/// as a second version, with `clients` clients granted on [`API`], [`FAILING_AUDIENCE`] and
/// [`SLEEPING_AUDIENCE`].
struct Rollout {
    dir: tempfile::TempDir,
    server: TestServer,
    admin: String,
    hook_id: String,
    seed_sha: String,
    hostile_sha: String,
    clients: Vec<Seeded>,
}

impl Rollout {
    async fn start(clients: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        seed(dir.path(), Some(SEED));
        let server = TestServer::start_configured(dir.path(), |config| {
            config.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
        })
        .await;
        let admin = admin_token(&server, dir.path()).await;
        let hook = server.store.hooks().expect("hooks").remove(0);
        let seed_sha = hook.active_version.clone().expect("a version");
        let uploaded = upload(&server, &admin, &hook.id, wasm(HOSTILE)).await;
        assert_eq!(uploaded.status, 201, "{}", uploaded.text);
        let hostile_sha = uploaded.json["version"]["sha256"]
            .as_str()
            .expect("sha")
            .to_owned();
        let rolled_back = call(
            &server,
            &admin,
            Method::POST,
            &format!("/api/v2/hooks/{}/rollback", hook.id),
            Some(json!({"version": seed_sha})),
        )
        .await;
        assert_eq!(rolled_back.status, 200, "{}", rolled_back.text);
        for identifier in [FAILING_AUDIENCE, SLEEPING_AUDIENCE] {
            let api = call(
                &server,
                &admin,
                Method::POST,
                "/api/v2/resource-servers",
                Some(json!({"identifier": identifier, "name": identifier})),
            )
            .await;
            assert_eq!(api.status, 201, "{}", api.text);
        }
        let mut made = Vec::new();
        for n in 0..clients {
            let created = call(
                &server,
                &admin,
                Method::POST,
                "/api/v2/clients",
                Some(json!({"name": format!("worker-{n}"), "app_type": "non_interactive"})),
            )
            .await;
            assert_eq!(created.status, 201, "{}", created.text);
            let client = Seeded {
                client_id: created.json["client_id"].as_str().expect("id").to_owned(),
                secret: created.json["client_secret"]
                    .as_str()
                    .expect("secret")
                    .to_owned(),
            };
            for audience in [API, FAILING_AUDIENCE, SLEEPING_AUDIENCE] {
                let grant = call(
                    &server,
                    &admin,
                    Method::POST,
                    "/api/v2/client-grants",
                    Some(json!({"client_id": client.client_id, "audience": audience, "scope": []})),
                )
                .await;
                assert_eq!(grant.status, 201, "{}", grant.text);
            }
            made.push(client);
        }
        Rollout {
            dir,
            server,
            admin,
            hook_id: hook.id,
            seed_sha,
            hostile_sha,
            clients: made,
        }
    }

    async fn patch(&self, body: Value) -> hookd_tests::Reply {
        call(
            &self.server,
            &self.admin,
            Method::PATCH,
            &format!("/api/v2/hooks/{}", self.hook_id),
            Some(body),
        )
        .await
    }

    async fn hook(&self) -> Value {
        let hook = call(
            &self.server,
            &self.admin,
            Method::GET,
            &format!("/api/v2/hooks/{}", self.hook_id),
            None,
        )
        .await;
        assert_eq!(hook.status, 200, "{}", hook.text);
        hook.json
    }

    async fn token(&self, client: &Seeded, audience: &str) -> hookd_tests::Reply {
        token_form(
            &self.server,
            Some((&client.client_id, &client.secret)),
            &[("grant_type", "client_credentials"), ("audience", audience)],
        )
        .await
    }

    /// Whether `client` is in the canary's share at `percent`.
    fn in_canary(&self, client: &Seeded, percent: u8) -> bool {
        client_bucket(&self.hook_id, &client.client_id) < percent
    }

    async fn logs(&self) -> Vec<Value> {
        let logs = call(
            &self.server,
            &self.admin,
            Method::GET,
            &format!("/api/v2/hooks/{}/logs", self.hook_id),
            None,
        )
        .await;
        assert_eq!(logs.status, 200, "{}", logs.text);
        logs.json.as_array().expect("entries").clone()
    }

    /// The hook's shadow counts on this server once `done` holds for them (the worker runs
    /// behind the requests).
    async fn shadow_observed(&self, done: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let observed = self.hook().await["shadow"]["observed"].clone();
                if done(&observed) {
                    return observed;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the shadow worker catches up")
    }

    /// The value of `family`'s series for the hostile version, with `more` labels after
    /// the hook's and the version's (e.g. `outcome="ok"`).
    async fn hostile_metric(&self, family: &str, more: &str) -> f64 {
        let labels = format!(
            "hook_id=\"{}\",version=\"{}\"{}{more}",
            self.hook_id,
            &self.hostile_sha[..12],
            if more.is_empty() { "" } else { "," }
        );
        self.metric(&format!("{family}{{{labels}}}")).await
    }

    async fn metric(&self, series: &str) -> f64 {
        let url = format!(
            "{}/metrics",
            self.server.metrics.as_deref().expect("metrics")
        );
        let text = send(Method::GET, &url, &[], "").await.text;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().expect("a number"))
    }
}

/// Which version issued `reply`'s token.
fn version_of(reply: &hookd_tests::Reply) -> &'static str {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let claims = payload(reply.json["access_token"].as_str().expect("token"));
    match (
        claims.get(SEED_CLAIM).is_some(),
        claims.get(HOSTILE_CLAIM).is_some(),
    ) {
        (true, false) => "seed",
        (false, true) => "hostile",
        other => panic!("a token from neither version ({other:?}): {claims}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_withdrawn_automatically_and_the_log_the_api_and_metrics_say_why() {
    let rollout = Rollout::start(24).await;
    let started = rollout
        .patch(json!({"canary": {"version": rollout.hostile_sha, "percent": 50, "min_calls": 5, "margin_percent": 10}}))
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    assert_eq!(
        started.json["canary"]["state"], "running",
        "{}",
        started.text
    );
    let canary_clients: Vec<&Seeded> = rollout
        .clients
        .iter()
        .filter(|client| rollout.in_canary(client, 50))
        .collect();
    assert!(
        canary_clients.len() >= 2 && canary_clients.len() < rollout.clients.len(),
        "{} of {} clients in a 50 % canary",
        canary_clients.len(),
        rollout.clients.len()
    );

    // Every client asks three times, one after another: the canary's clients fail (the hook
    // is fail-closed) until its fifth call, which withdraws it; then they run the seed too.
    let mut refused = Vec::new();
    for round in 0..3 {
        for client in &rollout.clients {
            let reply = rollout.token(client, FAILING_AUDIENCE).await;
            if reply.status == 200 {
                assert_eq!(version_of(&reply), "seed", "round {round}");
            } else {
                assert!(rollout.in_canary(client, 50), "{}", reply.text);
                refused.push(
                    reply.headers["x-request-id"]
                        .to_str()
                        .expect("id")
                        .to_owned(),
                );
            }
        }
    }
    assert_eq!(
        refused.len(),
        5,
        "the canary failed exactly min_calls times"
    );

    // The withdrawal is recorded: the API shows why.
    let hook = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let hook = rollout.hook().await;
            if hook["canary"]["state"] == "withdrawn" {
                return hook;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the withdrawal is recorded");
    let reason = hook["canary"]["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("100.0 % of its last 5 calls failed against 0.0 %"),
        "{reason}"
    );
    assert_eq!(hook["active_version"], rollout.seed_sha.as_str());
    assert_eq!(hook["canary"]["version"], rollout.hostile_sha.as_str());

    // The hook log marks the canary's calls, and the call that withdrew it says why.
    let entries = rollout.logs().await;
    let last_refused = refused.last().expect("a refused request");
    let tipping = entries
        .iter()
        .find(|entry| entry["request_id"] == last_refused.as_str())
        .expect("the withdrawing call is logged");
    assert_eq!(tipping["canary"], true);
    assert_eq!(tipping["version"], rollout.hostile_sha.as_str());
    assert!(
        tipping["log"]["notices"].to_string().contains(reason),
        "{tipping}"
    );
    let canary_calls = entries.iter().filter(|e| e["canary"] == true).count();
    assert_eq!(canary_calls, 5);

    // Metrics count the withdrawal and each version's calls apart.
    assert_eq!(
        rollout
            .hostile_metric("hookd_hook_canary_withdrawals_total", "")
            .await,
        1.0
    );
    assert_eq!(
        rollout
            .hostile_metric(
                "hookd_hook_invocations_total",
                "outcome=\"failed_reported\""
            )
            .await,
        5.0
    );

    // After the withdrawal every client runs the active version, even once the store is read
    // back (the withdrawal is persisted, not only in memory).
    for client in canary_clients {
        assert_eq!(
            version_of(&rollout.token(client, FAILING_AUDIENCE).await),
            "seed"
        );
    }
    let stored = rollout
        .server
        .store
        .hook(&rollout.hook_id)
        .expect("read")
        .expect("hook");
    assert!(matches!(
        stored.canary.map(|canary| canary.state),
        Some(hookd::model::CanaryState::Withdrawn { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_serves_its_share_consistently_and_is_promoted_with_one_command() {
    let rollout = Rollout::start(24).await;
    let base = format!("/api/v2/hooks/{}", rollout.hook_id);

    // What cannot be a canary is refused and changes nothing.
    for (body, field) in [
        (
            json!({"version": rollout.seed_sha, "percent": 10}),
            "canary.version",
        ),
        (
            json!({"version": "ab".repeat(32), "percent": 10}),
            "canary.version",
        ),
        (
            json!({"version": rollout.hostile_sha, "percent": 0}),
            "canary.percent",
        ),
        (
            json!({"version": rollout.hostile_sha, "percent": 10, "window": 5, "min_calls": 6}),
            "canary.min_calls",
        ),
    ] {
        let refused = rollout.patch(json!({ "canary": body })).await;
        assert_management_error(&refused, 400, Some("invalid_body"), field);
    }
    let promote = call(
        &rollout.server,
        &rollout.admin,
        Method::POST,
        &format!("{base}/canary/promote"),
        None,
    )
    .await;
    assert_management_error(&promote, 400, Some("invalid_body"), "no canary");
    assert!(rollout.hook().await.get("canary").is_none());

    // Started with the CLI, for 50 % of clients.
    let dir = rollout.dir.path();
    let out = admin_cli(
        &rollout.server,
        dir,
        &[
            "hooks",
            "canary",
            &rollout.hook_id,
            &rollout.hostile_sha,
            "--percent",
            "50",
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["canary"]["percent"], 50);
    assert_eq!(shown["canary"]["min_calls"], 20, "defaults fill the rule");

    // Each client sees one version, every time; the share follows the client's bucket.
    let mut by_version = std::collections::BTreeMap::<&str, usize>::new();
    for client in &rollout.clients {
        let expected = if rollout.in_canary(client, 50) {
            "hostile"
        } else {
            "seed"
        };
        for _ in 0..3 {
            assert_eq!(version_of(&rollout.token(client, API).await), expected);
        }
        *by_version.entry(expected).or_default() += 1;
    }
    assert!(
        by_version.len() == 2,
        "both versions served clients: {by_version:?}"
    );
    let hook = rollout.hook().await;
    assert_eq!(hook["canary"]["state"], "running");
    assert_eq!(
        hook["canary"]["observed"],
        json!({
            "canary_calls": 3 * by_version["hostile"],
            "canary_failures": 0,
            "active_calls": 3 * by_version["seed"],
            "active_failures": 0,
        })
    );
    let listed = admin_cli(&rollout.server, dir, &["hooks", "get", &rollout.hook_id]).await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("{} at 50 %", &rollout.hostile_sha[..12])),
        "{listed}"
    );

    // Promoted with one command: every client runs the canary's version, which is now the
    // active one, and the canary is gone.
    let out = admin_cli(
        &rollout.server,
        dir,
        &["hooks", "promote", &rollout.hook_id, "--json"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let promoted: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(promoted["active_version"], rollout.hostile_sha.as_str());
    assert!(promoted.get("canary").is_none(), "{promoted}");
    for client in &rollout.clients {
        assert_eq!(version_of(&rollout.token(client, API).await), "hostile");
    }

    // A canary of the old version, withdrawn by an operator (`--withdraw`): every client
    // goes back to the active version.
    let started = rollout
        .patch(json!({"canary": {"version": rollout.seed_sha, "percent": 100}}))
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    for client in &rollout.clients[..3] {
        assert_eq!(version_of(&rollout.token(client, API).await), "seed");
    }
    let out = admin_cli(
        &rollout.server,
        dir,
        &["hooks", "canary", &rollout.hook_id, "--withdraw", "--json"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let withdrawn: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(withdrawn["canary"]["state"], "withdrawn");
    assert_eq!(withdrawn["canary"]["reason"], "withdrawn by an operator");
    for client in &rollout.clients[..3] {
        assert_eq!(version_of(&rollout.token(client, API).await), "hostile");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_run_never_changes_a_token_and_logs_where_the_candidate_differs() {
    let rollout = Rollout::start(4).await;
    for (body, field) in [
        (
            json!({"version": rollout.seed_sha, "percent": 10}),
            "shadow.version",
        ),
        (
            json!({"version": rollout.hostile_sha, "percent": 101}),
            "shadow.percent",
        ),
    ] {
        let refused = rollout.patch(json!({ "shadow": body })).await;
        assert_management_error(&refused, 400, Some("invalid_body"), field);
    }
    let started = rollout
        .patch(json!({"shadow": {"version": rollout.hostile_sha, "percent": 100}}))
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    assert_eq!(started.json["shadow"]["percent"], 100);

    // Every token comes from the active version; the candidate runs on each request too.
    let mut asked = Vec::new();
    for n in 0..12 {
        let client = &rollout.clients[n % rollout.clients.len()];
        let audience = if n < 9 { API } else { FAILING_AUDIENCE };
        let reply = rollout.token(client, audience).await;
        assert_eq!(version_of(&reply), "seed");
        asked.push(
            reply.headers["x-request-id"]
                .to_str()
                .expect("id")
                .to_owned(),
        );
    }
    let observed = rollout
        .shadow_observed(|observed| observed["runs"] == 12)
        .await;
    assert_eq!(observed, json!({"runs": 12, "differed": 12, "dropped": 0}));

    // Each request has the active version's entry and a shadow entry naming the differences
    // (claim names, never values).
    let entries = rollout.logs().await;
    for (n, request_id) in asked.iter().enumerate() {
        let (shadows, actives): (Vec<&Value>, Vec<&Value>) = entries
            .iter()
            .filter(|entry| entry["request_id"] == request_id.as_str())
            .partition(|entry| entry["shadow"] == true);
        assert_eq!((actives.len(), shadows.len()), (1, 1), "{entries:?}");
        let (active, shadow) = (actives[0], shadows[0]);
        assert_eq!(active["version"], rollout.seed_sha.as_str());
        assert!(active.get("shadow").is_none(), "{active}");
        assert_eq!(shadow["shadow"], true);
        assert_eq!(shadow["version"], rollout.hostile_sha.as_str());
        let notices = shadow["log"]["notices"].to_string();
        if n < 9 {
            assert!(
                notices.contains("shadow claims added: ") && notices.contains(HOSTILE_CLAIM),
                "{notices}"
            );
            assert!(
                notices.contains(&format!("shadow claims removed: {SEED_CLAIM}")),
                "{notices}"
            );
            assert!(
                !notices.contains("\"bar\""),
                "claim values stay out: {notices}"
            );
        } else {
            assert!(
                notices.contains("shadow outcome: active allowed, candidate failed (failed)"),
                "{notices}"
            );
        }
    }
    assert_eq!(
        rollout
            .hostile_metric("hookd_hook_shadow_runs_total", "result=\"differed\"")
            .await,
        12.0
    );

    // At 50 %, exactly every other request is sampled (a changed share starts a new run).
    let half = rollout
        .patch(json!({"shadow": {"version": rollout.hostile_sha, "percent": 50}}))
        .await;
    assert_eq!(half.status, 201, "{}", half.text);
    for n in 0..10 {
        let reply = rollout.token(&rollout.clients[n % 4], API).await;
        assert_eq!(version_of(&reply), "seed");
    }
    let observed = rollout
        .shadow_observed(|observed| observed["runs"] == 5)
        .await;
    assert_eq!(observed["dropped"], 0);

    // Stopped with the CLI: no more shadow entries.
    let out = admin_cli(
        &rollout.server,
        rollout.dir.path(),
        &["hooks", "shadow", &rollout.hook_id, "--stop", "--json"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(stopped.get("shadow").is_none(), "{stopped}");
    let before = rollout
        .logs()
        .await
        .iter()
        .filter(|e| e["shadow"] == true)
        .count();
    for client in &rollout.clients {
        assert_eq!(version_of(&rollout.token(client, API).await), "seed");
    }
    let after = rollout
        .logs()
        .await
        .iter()
        .filter(|e| e["shadow"] == true)
        .count();
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_work_that_cannot_keep_up_is_dropped_and_counted_while_tokens_flow() {
    let rollout = Rollout::start(4).await;
    // The candidate sleeps until the hook's time limit on this audience: 50 ms a run, so a
    // burst of requests outruns the shadow worker.
    let limited = rollout
        .patch(json!({
            "limits": {"timeout_ms": 50},
            "shadow": {"version": rollout.hostile_sha, "percent": 100},
        }))
        .await;
    assert_eq!(limited.status, 201, "{}", limited.text);
    let requests = 300;
    let mut load = tokio::task::JoinSet::new();
    let rollout = std::sync::Arc::new(rollout);
    for task in 0..10 {
        let rollout = rollout.clone();
        load.spawn(async move {
            for n in 0..requests / 10 {
                let client = &rollout.clients[(task + n) % rollout.clients.len()];
                let reply = rollout.token(client, SLEEPING_AUDIENCE).await;
                assert_eq!(version_of(&reply), "seed");
            }
        });
    }
    while let Some(done) = load.join_next().await {
        done.expect("load task");
    }
    // Every sampled request was run or dropped, and the queue bounded what waited.
    let observed = rollout
        .shadow_observed(|observed| {
            observed["runs"].as_u64().unwrap_or(0) + observed["dropped"].as_u64().unwrap_or(0)
                == requests as u64
        })
        .await;
    let dropped = observed["dropped"].as_u64().expect("dropped");
    assert!(dropped > 0, "{observed}");
    assert_eq!(observed["differed"], observed["runs"]);
    assert_eq!(
        rollout
            .hostile_metric("hookd_hook_shadow_runs_total", "result=\"dropped\"")
            .await,
        dropped as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_invocation_replays_on_the_server_and_locally_with_secrets_redacted() {
    let rollout = Rollout::start(1).await;
    let client = &rollout.clients[0];
    let secret = "s3cret-value-for-replay";
    let hook = format!("/api/v2/hooks/{}", rollout.hook_id);
    let set = call(
        &rollout.server,
        &rollout.admin,
        Method::POST,
        &format!("{hook}/secrets"),
        Some(json!({"API_TOKEN": secret})),
    )
    .await;
    assert_eq!(set.status, 201, "{}", set.text);
    // Production runs the hostile guest, which fails on this audience.
    let active = call(
        &rollout.server,
        &rollout.admin,
        Method::POST,
        &format!("{hook}/rollback"),
        Some(json!({"version": rollout.hostile_sha})),
    )
    .await;
    assert_eq!(active.status, 200, "{}", active.text);
    let failed = rollout.token(client, FAILING_AUDIENCE).await;
    assert_ne!(failed.status, 200);
    let failed_id = failed.headers["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let echoed = rollout.token(client, API).await;
    assert_eq!(version_of(&echoed), "hostile");
    let echoed_id = echoed.headers["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();

    // The recorded input, for read:logs callers, with the secret's value redacted.
    let events = call(
        &rollout.server,
        &rollout.admin,
        Method::GET,
        &format!("{hook}/events?request_id={failed_id}"),
        None,
    )
    .await;
    assert_eq!(events.status, 200, "{}", events.text);
    let recorded = &events.json.as_array().expect("events")[0];
    assert_eq!(recorded["version"], rollout.hostile_sha.as_str());
    assert_eq!(recorded["outcome"]["result"], "failed");
    assert_eq!(recorded["event"]["audience"], FAILING_AUDIENCE);
    assert_eq!(
        recorded["event"]["context"]["secrets"]["API_TOKEN"],
        "_VALUE_NOT_SHOWN_"
    );
    let all = call(
        &rollout.server,
        &rollout.admin,
        Method::GET,
        &format!("{hook}/events"),
        None,
    )
    .await;
    let all = all.json.as_array().expect("events");
    assert_eq!(all.len(), 2);
    // The inputs never hold a secret's value (what the hook returned is its own doing: this
    // one echoes the secret into a claim, as its tokens show).
    for recorded in all {
        assert!(
            !recorded["event"].to_string().contains(secret),
            "{recorded}"
        );
    }

    // On the server, against the seed: the failure is gone.
    let dir = rollout.dir.path();
    let out = admin_cli(
        &rollout.server,
        dir,
        &[
            "hooks",
            "replay",
            &failed_id,
            "--version",
            &rollout.seed_sha,
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(view["recorded"]["outcome"]["result"], "failed");
    assert_eq!(view["replayed"]["version"], rollout.seed_sha.as_str());
    assert_eq!(view["replayed"]["outcome"]["result"], "allowed");
    assert_eq!(view["replayed"]["changes"]["claims"][SEED_CLAIM], "bar");

    // On the server, on the active version, the hook gets its real secret back.
    let out = admin_cli(
        &rollout.server,
        dir,
        &[
            "hooks",
            "replay",
            &echoed_id,
            "--hook",
            &rollout.hook_id,
            "--json",
        ],
    )
    .await;
    let view: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        view["replayed"]["changes"]["claims"]["secret_value"],
        secret
    );
    assert_eq!(
        view["recorded"]["changes"]["claims"], view["replayed"]["changes"]["claims"],
        "the same version on the same event decides the same"
    );

    // Side by side as text: the difference is marked.
    let out = admin_cli(
        &rollout.server,
        dir,
        &[
            "hooks",
            "replay",
            &failed_id,
            "--version",
            &rollout.seed_sha,
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let outcome_line = text
        .lines()
        .find(|line| line.starts_with("outcome"))
        .expect("an outcome row");
    assert!(
        outcome_line.contains("failed failed") && outcome_line.contains("≠ allowed"),
        "{text}"
    );
    assert!(text.contains(&format!("claim {SEED_CLAIM}")), "{text}");

    // Locally, against a module file, with a secret given on the command line.
    let out = admin_cli(
        &rollout.server,
        dir,
        &[
            "hooks",
            "replay",
            &echoed_id,
            "--module",
            HOSTILE,
            "--secret",
            "API_TOKEN=local",
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(view["replayed"]["version"], HOSTILE);
    assert_eq!(
        view["replayed"]["changes"]["claims"]["secret_value"],
        "local"
    );

    // A request nobody recorded says so.
    let out = admin_cli(
        &rollout.server,
        dir,
        &["hooks", "replay", "no-such-request"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no hook has a recorded invocation"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
