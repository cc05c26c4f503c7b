//! JavaScript hooks end to end: components built from source by the JavaScript SDK (Auth0
//! Hooks and Actions code), run by the real engine and through the token endpoint of a real
//! server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookd::hooklog::LoggedOutcome;
use hookd::hooks::{
    DenyCode, EngineSettings, ExtensibilityPoint, HookEngine, HookError, HookLimits, Invocation,
    LoadSource, TokenChanges,
};
use hookd::management::{self, NewApi};
use hookd_tests::{
    API, JS_COUNTER_HOOK, JS_DENY_BY_AUDIENCE, JS_HOSTILE_ACTION, JS_HOSTILE_HOOK, JS_NPM_PACKAGE,
    JS_SECRET_CLAIMS, JS_SEED, JS_SEED_ACTION, Seeded, TestServer, add_api, admin_token,
    cached_engine, call, event, get_token, get_token_for, load, seed, token_form, upload, verify,
    wasm,
};
use http::Method;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

/// A hang fails the test instead of stalling CI. Generous: it bounds, it does not time.
const BOUND: Duration = Duration::from_secs(30);

/// The hook from Auth0's documentation, byte for byte, as `guest-examples/js/seed/hook.js`
/// must hold it.
const CANONICAL_SEED: &str = "module.exports = function(client, scope, audience, context, cb) {
  var access_token = {};
  access_token['https://foo.com/claim'] = 'bar';
  access_token.scope = scope;
  access_token.scope.push('extra');
  cb(null, access_token);
};
";

/// Limits for misbehaving hooks: JavaScript needs a 9 MiB heap and ~2 M fuel per call. The
/// deadline is generous, so on a loaded machine it never beats the fuel or memory limit a
/// case is about; the cases about deadlines run under [`deadline_limits`].
fn hostile_limits() -> HookLimits {
    HookLimits {
        fuel: 50_000_000,
        memory_bytes: 32 << 20,
        timeout_ms: HookLimits::MAX_TIMEOUT_MS,
        ..HookLimits::default()
    }
}

/// The hostile limits with a short deadline, for the cases that must end in a timeout.
fn deadline_limits() -> HookLimits {
    HookLimits {
        timeout_ms: 500,
        ..hostile_limits()
    }
}

async fn invoke(
    engine: &HookEngine,
    hook: &hookd::hooks::LoadedHook,
    audience: &str,
) -> Invocation {
    tokio::time::timeout(
        BOUND,
        engine.invoke_credentials_exchange(hook, event(audience)),
    )
    .await
    .expect("the invocation ended within the bound")
}

/// The hostile guests pick their behaviour from the audience `https://<case>.test/`.
fn case(name: &str) -> String {
    format!("https://{name}.test/")
}

fn claims(changes: &TokenChanges) -> Value {
    Value::Object(changes.claims.clone())
}

/// Verifies a successful token response against the JWKS and returns the token's claims.
async fn verified_claims(server: &TestServer, reply: &hookd_tests::Reply, audience: &str) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json["access_token"].as_str().expect("token");
    verify(server, token, Algorithm::RS256, audience).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_hook_verbatim_adds_its_claim_and_scope() {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-examples/js/seed/hook.js"),
    )
    .expect("the seed example");
    assert_eq!(
        source, CANONICAL_SEED,
        "the example is Auth0's hook, unchanged"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(JS_SEED));
    let server = TestServer::start(dir.path()).await;
    let reply = get_token(&server, &seeded).await;
    assert_eq!(reply.json["scope"], "read:reports write:reports extra");
    let claims = verified_claims(&server, &reply, API).await;
    assert_eq!(claims["https://foo.com/claim"], "bar");
    assert_eq!(claims["scope"], "read:reports write:reports extra");

    let hook_id = server.store.hooks().expect("hooks").remove(0).id;
    let entries = server.hook_log.recent(&hook_id);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome, LoggedOutcome::Allowed);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_action_gives_the_same_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(JS_SEED_ACTION));
    let server = TestServer::start(dir.path()).await;
    let reply = get_token(&server, &seeded).await;
    let claims = verified_claims(&server, &reply, API).await;
    assert_eq!(claims["https://foo.com/claim"], "bar");
    assert_eq!(claims["scope"], "read:reports write:reports extra");

    // A requested subset: the Action starts from the granted (requested) scopes.
    let subset = token_form(
        &server,
        Some((&seeded.client_id, &seeded.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", API),
            ("scope", "read:reports"),
        ],
    )
    .await;
    assert_eq!(
        subset.json["scope"], "read:reports extra",
        "{}",
        subset.text
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_hook_reads_its_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let created = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/hooks",
        Some(
            json!({"name": "secret-claims", "triggerId": "credentials-exchange", "enabled": true}),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().expect("id").to_owned();
    let uploaded = upload(&server, &admin, &id, wasm(JS_SECRET_CLAIMS)).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);

    // Without its secret the hook refuses with ServerError: 500 with its message.
    let refused = get_token(&server, &seeded).await;
    assert_eq!(refused.status, 500, "{}", refused.text);
    assert_eq!(refused.json["error"], "server_error");
    assert_eq!(
        refused.json["error_description"],
        "the hook is not configured"
    );

    let secrets = format!("/api/v2/hooks/{id}/secrets");
    let added = call(
        &server,
        &admin,
        Method::POST,
        &secrets,
        Some(json!({"KEY_ID": "k-7"})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let reply = get_token(&server, &seeded).await;
    let claims = verified_claims(&server, &reply, API).await;
    assert_eq!(claims["https://hookd.example.com/key_id"], "k-7");
    assert_eq!(claims["https://hookd.example.com/tier"], "gold");
    assert_eq!(claims["scope"], "read:reports write:reports");

    // What the hook logged on the refusal is in its log, which the Management API serves.
    let logs = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/hooks/{id}/logs"),
        None,
    )
    .await;
    assert!(
        logs.text.contains("secret KEY_ID is not set"),
        "{}",
        logs.text
    );
    assert!(
        !logs.text.contains("k-7"),
        "secret values never reach the log"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_hook_denies_with_auth0_error_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(JS_DENY_BY_AUDIENCE));
    let server = TestServer::start(dir.path()).await;

    // Allowed audience, client with a tier: passes unchanged.
    let reply = get_token(&server, &seeded).await;
    assert_eq!(
        reply.json["scope"], "read:reports write:reports",
        "{}",
        reply.text
    );

    // An API outside the hook's allow-list: InvalidRequestError, 400.
    let admin_api = "https://admin.example.com/";
    add_api(
        &server,
        &seeded.client_id,
        NewApi::new(admin_api, "Admin", &["read:reports"]),
    );
    let denied = get_token_for(&server, &seeded, admin_api).await;
    assert_eq!(denied.status, 400, "{}", denied.text);
    assert_eq!(denied.json["error"], "invalid_request");
    assert_eq!(
        denied.json["error_description"],
        "tokens for https://admin.example.com/ are not issued to machine clients"
    );

    // A client without a tier: InvalidScopeError, 400.
    let hasher = hookd_tests::test_hasher(&server.store);
    let (plain, secret) = hookd_tests::now(management::create_client(
        &server.store,
        &hasher,
        "plain",
        Default::default(),
    ))
    .expect("client");
    hookd_tests::now(management::create_grant(
        &server.store,
        &plain.client_id,
        API,
        &["read:reports"],
    ))
    .expect("grant");
    let plain = Seeded {
        client_id: plain.client_id,
        secret,
    };
    let scoped = get_token_for(&server, &plain, API).await;
    assert_eq!(scoped.status, 400, "{}", scoped.text);
    assert_eq!(scoped.json["error"], "invalid_scope");
    assert_eq!(
        scoped.json["error_description"],
        "clients without a tier get no scopes"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_hook_bundles_its_npm_dependency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(JS_NPM_PACKAGE));
    let server = TestServer::start(dir.path()).await;
    let reply = get_token(&server, &seeded).await;
    let claims = verified_claims(&server, &reply, API).await;
    // `ms('2h')`, computed by the bundled package inside the sandbox.
    assert_eq!(
        claims["https://hookd.example.com/refresh_after_ms"],
        7_200_000
    );
    server.stop().await;
}

/// What a hostile case must end in.
enum Expect {
    Allow(fn(&TokenChanges)),
    Deny(DenyCode, &'static str),
    /// A readable failure whose message starts with this.
    Failed(&'static str),
    Timeout,
    OutOfFuel,
    MemoryLimit,
}

async fn check_cases(path: &str, cases: &[(&str, Expect)]) {
    let engine = cached_engine();
    let hook = load(&engine, path, hostile_limits());
    let short_deadline = load(&engine, path, deadline_limits());
    for (name, expect) in cases {
        let hook = match expect {
            Expect::Timeout => &short_deadline,
            _ => &hook,
        };
        let invocation = invoke(&engine, hook, &case(name)).await;
        let result = &invocation.result;
        match (expect, result) {
            (Expect::Allow(check), Ok(changes)) => check(changes),
            (Expect::Deny(code, description), Err(HookError::Denied(denial))) => {
                assert_eq!(
                    (denial.code, denial.description.as_str()),
                    (*code, *description)
                );
            }
            (Expect::Failed(start), Err(HookError::Failed { message })) => {
                assert!(message.starts_with(start), "{name}: {message}");
                assert!(
                    invocation.log.notices.iter().any(|n| n.contains(start)),
                    "{name}: the failure is noted in the hook log: {:?}",
                    invocation.log.notices
                );
            }
            (Expect::Timeout, Err(HookError::Timeout { .. }))
            | (Expect::OutOfFuel, Err(HookError::OutOfFuel { .. }))
            | (Expect::MemoryLimit, Err(HookError::MemoryLimit { .. })) => {}
            (_, other) => panic!("case {name}: unexpected result {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_an_auth0_hook_ends_is_typed() {
    check_cases(
        JS_HOSTILE_HOOK,
        &[
            (
                "async-cb",
                Expect::Allow(|c| assert_eq!(claims(c)["https://hookd.test/async"], true)),
            ),
            (
                "await-cb",
                Expect::Allow(|c| assert_eq!(claims(c)["https://hookd.test/awaited"], 1)),
            ),
            ("never-cb", Expect::Timeout),
            (
                "throw-type-error",
                Expect::Failed("TypeError: can't access property \"here\""),
            ),
            ("reject", Expect::Failed("RangeError: async failure")),
            (
                "throw-string",
                Expect::Failed("a non-Error value was thrown: \"a bare string\""),
            ),
            (
                "cb-error",
                Expect::Deny(DenyCode::ServerError, "plain error"),
            ),
            (
                "cb-server-error",
                Expect::Deny(DenyCode::ServerError, "server says no"),
            ),
            (
                "cb-invalid-scope",
                Expect::Deny(DenyCode::InvalidScope, "scope not allowed"),
            ),
            (
                "cb-invalid-request",
                Expect::Deny(DenyCode::InvalidRequest, "bad request"),
            ),
            (
                "throw-invalid-scope",
                Expect::Deny(DenyCode::InvalidScope, "thrown scope error"),
            ),
            (
                "cb-twice",
                Expect::Allow(|c| assert_eq!(c.scope, Some(vec!["first".to_owned()]))),
            ),
            (
                "scope-string",
                Expect::Failed(
                    "access_token.scope must be an array of strings, got string \"read\"",
                ),
            ),
            (
                "scope-number-item",
                Expect::Failed(
                    "access_token.scope must be an array of strings, but item 1 is number 1",
                ),
            ),
            (
                "token-string",
                Expect::Failed("cb's second argument must be an object"),
            ),
            (
                "bigint-claim",
                Expect::Failed("claim \"https://hookd.test/big\" cannot be written as JSON"),
            ),
            // Leaving `scope` out of the token clears it, as in Auth0; `cb()` changes nothing.
            (
                "no-scope",
                Expect::Allow(|c| assert_eq!(c.scope, Some(vec![]))),
            ),
            (
                "no-changes",
                Expect::Allow(|c| assert_eq!(c, &TokenChanges::default())),
            ),
            ("loop", Expect::OutOfFuel),
            ("memory", Expect::MemoryLimit),
            (
                "fetch",
                Expect::Failed("TypeError: fetch is not available in hookd hooks"),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_an_auth0_action_ends_is_typed() {
    check_cases(
        JS_HOSTILE_ACTION,
        &[
            ("throw", Expect::Failed("Error: action failed")),
            (
                "deny-after-await",
                Expect::Deny(DenyCode::InvalidScope, "no tokens for client-1"),
            ),
            (
                "deny-server-error",
                Expect::Deny(DenyCode::ServerError, "upstream unavailable"),
            ),
            (
                "bad-deny-code",
                Expect::Failed("TypeError: api.access.deny: code must be"),
            ),
            (
                "cache",
                Expect::Failed("Error: api.cache is not available in hookd"),
            ),
            ("never-settles", Expect::Timeout),
            (
                "set-target-scopes",
                Expect::Allow(|c| {
                    assert_eq!(
                        c.scope,
                        Some(vec!["read:reports".to_owned(), "admin".to_owned()])
                    );
                }),
            ),
            (
                "bad-target-scopes",
                Expect::Failed(
                    "api.transaction.setTargetScopes's argument must be an array of strings",
                ),
            ),
            (
                "sync",
                Expect::Allow(|c| assert_eq!(claims(c)["https://hookd.test/sync"], true)),
            ),
            (
                "event",
                Expect::Allow(|c| {
                    let event = &claims(c)["https://hookd.test/event"];
                    assert_eq!(event["client"]["client_id"], "client-1");
                    assert_eq!(event["client"]["metadata"]["tier"], "gold");
                    assert_eq!(
                        event["resource_server"]["identifier"],
                        "https://event.test/"
                    );
                    assert_eq!(event["secrets"]["API_KEY"], "s3cret");
                    assert_eq!(event["tenant"]["id"], "acme");
                    assert_eq!(event["request"]["ip"], "203.0.113.7");
                    assert_eq!(event["request"]["user_agent"], "curl/8.5");
                    assert_eq!(
                        event["transaction"]["requested_scopes"],
                        json!(["read:reports"])
                    );
                    assert_eq!(event["accessToken"]["scope"], json!(["read:reports"]));
                }),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_clocks_and_randomness_work_at_run_time() {
    let engine = cached_engine();
    let hook = load(&engine, JS_HOSTILE_HOOK, hostile_limits());

    let logged = invoke(&engine, &hook, &case("log")).await;
    assert!(logged.result.is_ok(), "{:?}", logged.result);
    assert!(
        logged.log.output.contains("log line 1"),
        "{}",
        logged.log.output
    );
    assert!(
        logged.log.output.contains("error line"),
        "{}",
        logged.log.output
    );

    let millis = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as f64
    };
    let before = millis();
    let first = invoke(&engine, &hook, &case("environment")).await;
    let second = invoke(&engine, &hook, &case("environment")).await;
    let after = millis();
    let first = claims(&first.result.expect("environment allows"));
    let second = claims(&second.result.expect("environment allows"));
    // Date.now() is the time of the call, not of the build. The guest's clock and the
    // host's readings may round differently, so allow a few milliseconds either side.
    let now = first["https://hookd.test/now"].as_f64().expect("a number");
    const GRANULARITY_MS: f64 = 5.0;
    assert!(
        before - GRANULARITY_MS <= now && now <= after + GRANULARITY_MS,
        "{before} <= {now} <= {after} (within {GRANULARITY_MS} ms)"
    );
    // Math.random() differs between fresh instances.
    assert_ne!(
        first["https://hookd.test/random"],
        second["https://hookd.test/random"]
    );
    // The hook saw Auth0's arguments.
    let input = &first["https://hookd.test/input"];
    assert_eq!(input["client"]["id"], "client-1");
    assert_eq!(input["client"]["metadata"]["tier"], "gold");
    assert_eq!(input["scope"], json!(["read:reports"]));
    assert_eq!(input["context"]["webtask"]["secrets"]["API_KEY"], "s3cret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hook_failures_give_a_generic_500_with_details_in_the_hook_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(JS_HOSTILE_HOOK));
    let server = TestServer::start(dir.path()).await;
    let audience = case("throw-type-error");
    add_api(
        &server,
        &seeded.client_id,
        NewApi::new(&audience, "Throws", &["read:reports"]),
    );

    let reply = get_token_for(&server, &seeded, &audience).await;
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert_eq!(reply.json["error"], "server_error");
    for leak in ["TypeError", "client.nothing", "bundle", "here"] {
        assert!(!reply.text.contains(leak), "{leak} leaked: {}", reply.text);
    }
    let request_id = reply.headers["x-request-id"].to_str().expect("ascii");
    let hook_id = server.store.hooks().expect("hooks").remove(0).id;
    let entries = server.hook_log.recent(&hook_id);
    let entry = entries
        .iter()
        .find(|e| e.request_id == request_id)
        .expect("an entry for the request");
    match &entry.outcome {
        LoggedOutcome::Failed {
            kind,
            message,
            token_issued,
        } => {
            assert_eq!(kind, "failed");
            assert!(
                message.contains("TypeError: can't access property"),
                "{message}"
            );
            assert!(!token_issued);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_the_js_hook_from_the_compiled_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let settings = EngineSettings {
        max_concurrency: 2,
        cache: Some(hookd::hooks::ArtifactCacheSettings::new(
            cache.path().to_owned(),
            b"installation key of 32 bytes ...",
        )),
    };
    let bytes = wasm(JS_SEED);
    let point = ExtensibilityPoint::CredentialsExchange;
    let first = HookEngine::new(settings.clone()).expect("engine");
    let compiled =
        tokio::task::spawn_blocking(move || first.load(point, &bytes, HookLimits::default()))
            .await
            .expect("join")
            .expect("the JS seed compiles");
    assert!(matches!(compiled.source, LoadSource::Compiled { .. }));

    // A new engine, as after a restart: the artifact is loaded, nothing is compiled.
    let second = HookEngine::new(settings).expect("engine");
    let cached = load(&second, JS_SEED, HookLimits::default());
    assert!(
        matches!(cached.source, LoadSource::Cached { .. }),
        "{:?}",
        cached.source
    );
    assert_eq!(cached.sha256, compiled.sha256);
    let changes = invoke(&second, &cached, API)
        .await
        .result
        .expect("the cached hook runs");
    assert_eq!(claims(&changes)["https://foo.com/claim"], "bar");
}

/// The counter guest's count in a successful invocation.
fn count(invocation: &Invocation) -> u64 {
    let changes = invocation.result.as_ref().expect("the counter allows");
    claims(changes)["https://hookd.test/calls"]
        .as_u64()
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_reuse_is_opt_in_and_keeps_globals_only_on_a_healthy_instance() {
    let engine = cached_engine();
    let mut hook = load(&engine, JS_COUNTER_HOOK, HookLimits::default());

    // The default: a fresh instance per call, so no call sees another's globals.
    assert!(!hook.reuses_instances());
    for _ in 0..3 {
        assert_eq!(count(&invoke(&engine, &hook, API).await), 1);
    }
    let fresh_fuel = invoke(&engine, &hook, API).await.fuel_used;

    // Opted in: calls on one live instance see the count grow.
    engine.set_instance_reuse(&mut hook, true);
    assert!(hook.reuses_instances());
    let mut reused_fuel = 0;
    for expected in 1..=3 {
        let invocation = invoke(&engine, &hook, API).await;
        assert_eq!(count(&invocation), expected);
        reused_fuel = invocation.fuel_used;
    }
    assert_eq!(hook.idle_instances(), 1);
    assert!(
        reused_fuel < fresh_fuel,
        "a warm call skips the engine's start-up: {reused_fuel} vs {fresh_fuel}"
    );

    // A failure discards the instance: the next call starts from a fresh one.
    let failed = invoke(&engine, &hook, "https://fail.test/").await;
    match &failed.result {
        Err(HookError::Failed { message }) => {
            assert!(message.starts_with("Error: failing on call 4"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(hook.idle_instances(), 0);
    assert_eq!(count(&invoke(&engine, &hook, API).await), 1);

    // Concurrent calls each get an instance of their own, never one another's: on an engine
    // that runs three calls at once, twelve concurrent calls use at most three instances,
    // each serves its calls one after another (its counts are 1, 2, 3, ... with no repeat),
    // and every instance is idle afterwards.
    let small = hookd_tests::cached_engine_with(3);
    let mut shared = load(&small, JS_COUNTER_HOOK, HookLimits::default());
    small.set_instance_reuse(&mut shared, true);
    let shared = std::sync::Arc::new(shared);
    let calls = (0..12).map(|_| {
        let (engine, hook) = (small.clone(), shared.clone());
        tokio::spawn(async move { invoke(&engine, &hook, API).await })
    });
    let mut counts_by_instance: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for call in calls {
        let invocation = call.await.expect("join");
        let changes = invocation.result.as_ref().expect("the counter allows");
        let instance = claims(changes)["https://hookd.test/instance"]
            .as_str()
            .expect("an instance name")
            .to_owned();
        counts_by_instance
            .entry(instance)
            .or_default()
            .push(count(&invocation));
    }
    assert!(
        (1..=3).contains(&counts_by_instance.len()),
        "{counts_by_instance:?}"
    );
    for (instance, counts) in &mut counts_by_instance {
        counts.sort_unstable();
        let expected: Vec<u64> = (1..=counts.len() as u64).collect();
        assert_eq!(
            *counts, expected,
            "instance {instance} served two calls at once"
        );
    }
    assert_eq!(shared.idle_instances(), counts_by_instance.len());

    // Turning it off lets the idle instances go.
    engine.set_instance_reuse(&mut hook, false);
    assert_eq!(hook.idle_instances(), 0);
    assert_eq!(count(&invoke(&engine, &hook, API).await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_turn_instance_reuse_on_and_off_through_the_management_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(JS_COUNTER_HOOK));
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let hook_id = server.store.hooks().expect("hooks").remove(0).id;
    let calls = async |server: &TestServer| -> u64 {
        let reply = get_token(server, &seeded).await;
        verified_claims(server, &reply, API).await["https://hookd.test/calls"]
            .as_u64()
            .expect("a count")
    };

    assert_eq!(calls(&server).await, 1);
    assert_eq!(calls(&server).await, 1);

    let path = format!("/api/v2/hooks/{hook_id}");
    let on = call(
        &server,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"reuse_instances": true})),
    )
    .await;
    assert_eq!(on.status, 201, "{}", on.text);
    assert_eq!(on.json["reuse_instances"], true);
    assert_eq!(calls(&server).await, 1);
    assert_eq!(calls(&server).await, 2);
    assert_eq!(calls(&server).await, 3);

    let off = call(
        &server,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"reuse_instances": false})),
    )
    .await;
    assert_eq!(off.json["reuse_instances"], false);
    assert_eq!(calls(&server).await, 1);
    assert_eq!(calls(&server).await, 1);
    server.stop().await;
}
