//! The Management API as operators' scripts use it: a token from hookd's own token endpoint
//! for the Management API audience, then `/api/v2/hooks...` over real HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hookd_tests::{
    API, DENY_BY_AUDIENCE, SEED, Seeded, TestServer, admin, admin_token, assert_management_error,
    assert_oauth_error, call, create_hook, get_token, seed, send, token_form, upload, wasm,
};
use http::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_writes_admin_credentials_that_get_a_management_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin(dir.path());
    assert_eq!(admin["audience"], "https://hookd.test/api/v2/");
    assert_eq!(admin["token_endpoint"], "https://hookd.test/oauth/token");
    let token = admin_token(&server, dir.path()).await;
    let list = call(&server, &token, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.json, json!([]));
    server.stop().await;

    // A restart does not create a second admin or rewrite the file.
    let before = std::fs::read_to_string(dir.path().join("admin.json")).expect("read");
    let server = TestServer::start(dir.path()).await;
    let after = std::fs::read_to_string(dir.path().join("admin.json")).expect("read");
    assert_eq!(before, after);
    assert_eq!(server.store.clients().expect("clients").len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_calls_need_a_valid_token_for_the_management_audience_with_the_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let url = format!("{}/api/v2/hooks", server.base);

    let none = send(Method::GET, &url, &[], "").await;
    assert_management_error(&none, 401, None, "");
    assert_eq!(none.json["statusCode"], 401);
    assert!(
        none.headers["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer")
    );

    let garbage = send(
        Method::GET,
        &url,
        &[("authorization", "Bearer not.a.jwt")],
        "",
    )
    .await;
    assert_management_error(&garbage, 401, None, "");

    // A real token, but for another API.
    let other = get_token(&server, &seeded).await;
    let other = other.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let wrong_audience = call(&server, &other, Method::GET, "/api/v2/hooks", None).await;
    assert_management_error(&wrong_audience, 401, None, "");

    // A token for the Management API with only read:hooks.
    let audience = "https://hookd.test/api/v2/";
    hookd_tests::now(hookd::management::create_grant(
        &server.store,
        &seeded.client_id,
        audience,
        &["read:hooks"],
    ))
    .expect("grant");
    let reply = token_form(
        &server,
        Some((&seeded.client_id, &seeded.secret)),
        &[("grant_type", "client_credentials"), ("audience", audience)],
    )
    .await;
    let reader = reply.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let read = call(&server, &reader, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let create = call(
        &server,
        &reader,
        Method::POST,
        "/api/v2/hooks",
        Some(json!({"name": "x", "triggerId": "credentials-exchange"})),
    )
    .await;
    assert_management_error(&create, 403, Some("insufficient_scope"), "");
    assert_eq!(create.json["errorCode"], "insufficient_scope");
    assert_eq!(
        server.store.hooks().expect("hooks").len(),
        0,
        "nothing was created"
    );

    // A tampered token (payload changed, signature kept) is refused.
    let mut parts: Vec<String> = reader.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let tampered = parts.join(".");
    let reply = call(&server, &tampered, Method::GET, "/api/v2/hooks", None).await;
    assert_management_error(&reply, 401, None, "");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_is_created_uploaded_versioned_rolled_back_and_disabled_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;

    let created = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/hooks",
        Some(json!({"name": "add claims", "triggerId": "credentials-exchange"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json["enabled"], true,
        "the first hook of a trigger is enabled"
    );
    assert_eq!(created.json["active_version"], Value::Null);
    let id = created.json["id"].as_str().expect("id").to_owned();

    // No module yet: tokens are issued unchanged.
    assert_eq!(
        get_token(&server, &seeded).await.json["scope"],
        "read:reports write:reports"
    );

    // The request ids of the token requests that ran the hook, in order.
    let mut invoked = Vec::new();
    let first = upload(&server, &admin, &id, wasm(SEED)).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let seed_sha = first.json["version"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let (scope, request_id) = scope_and_request_id(&server, &seeded).await;
    invoked.push(request_id);
    assert_eq!(
        scope, "read:reports write:reports extra",
        "the uploaded seed hook runs at once"
    );

    let second = upload(&server, &admin, &id, wasm(DENY_BY_AUDIENCE)).await;
    assert_eq!(second.status, 201, "{}", second.text);
    let (scope, request_id) = scope_and_request_id(&server, &seeded).await;
    invoked.push(request_id);
    assert_eq!(scope, "read:reports write:reports");

    let versions = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/hooks/{id}/versions"),
        None,
    )
    .await;
    assert_eq!(versions.status, 200);
    let listed = versions.json.as_array().expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["sha256"], seed_sha.as_str());
    assert_eq!(listed[1]["active"], true);

    let rolled_back = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/v2/hooks/{id}/rollback"),
        Some(json!({"version": seed_sha})),
    )
    .await;
    assert_eq!(rolled_back.status, 200, "{}", rolled_back.text);
    let (scope, request_id) = scope_and_request_id(&server, &seeded).await;
    invoked.push(request_id);
    assert_eq!(scope, "read:reports write:reports extra");

    // A module that fails validation is refused and changes nothing.
    let core = wasm_core_module();
    let refused = upload(&server, &admin, &id, core).await;
    assert_management_error(&refused, 400, Some("invalid_module"), "not a component");
    assert!(
        refused.json["message"]
            .as_str()
            .expect("message")
            .contains("core WebAssembly module")
    );
    let hook = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/hooks/{id}"),
        None,
    )
    .await;
    assert_eq!(hook.json["versions"].as_array().expect("versions").len(), 2);
    assert_eq!(hook.json["active_version"], seed_sha.as_str());

    // triggerId cannot change; unknown fields are refused naming them.
    let patch = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{id}"),
        Some(json!({"triggerId": "pre-user-registration"})),
    )
    .await;
    assert_management_error(&patch, 400, Some("invalid_body"), "");
    assert!(
        patch.json["message"]
            .as_str()
            .expect("message")
            .contains("triggerId")
    );

    // The log has the invocations, tied to their request ids.
    let logs = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/hooks/{id}/logs"),
        None,
    )
    .await;
    assert_eq!(logs.status, 200, "{}", logs.text);
    let logged: Vec<&str> = logs
        .json
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["request_id"].as_str().expect("a request id"))
        .collect();
    assert_eq!(
        logged, invoked,
        "one entry per hook run, under its request's id"
    );

    let disabled = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(disabled.status, 201, "{}", disabled.text);
    assert_eq!(
        get_token(&server, &seeded).await.json["scope"],
        "read:reports write:reports"
    );

    // A restart brings back exactly what was stored.
    let enabled = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(enabled.status, 201);
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    assert_eq!(
        get_token(&server, &seeded).await.json["scope"],
        "read:reports write:reports extra"
    );

    let admin = admin_token(&server, dir.path()).await;
    let duplicate = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/hooks",
        Some(json!({"name": "add claims", "triggerId": "credentials-exchange"})),
    )
    .await;
    assert_management_error(&duplicate, 409, Some("conflict"), "");
    let missing = call(&server, &admin, Method::GET, "/api/v2/hooks/nope", None).await;
    assert_management_error(&missing, 404, Some("inexistent_resource"), "");
    let deleted = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/hooks/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        get_token(&server, &seeded).await.json["scope"],
        "read:reports write:reports"
    );
    server.stop().await;
}

fn wasm_core_module() -> Vec<u8> {
    wat::parse_str("(module)").expect("wat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_hooks_under_load_fails_no_token_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = Arc::new(TestServer::start(dir.path()).await);
    let admin = admin_token(&server, dir.path()).await;
    let id = create_hook(
        &server,
        &admin,
        json!({"name": "swapped", "triggerId": "credentials-exchange"}),
    )
    .await;
    let seed_sha = upload(&server, &admin, &id, wasm(SEED)).await.json["version"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let other_sha = upload(&server, &admin, &id, wasm(DENY_BY_AUDIENCE))
        .await
        .json["version"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();

    // Each answer is classified by what ran: the seed version adds its claim; the other
    // version adds nothing but leaves a hook log entry under the request's id; a disabled
    // hook leaves neither.
    let failures = Arc::new(AtomicU64::new(0));
    let by_seed = Arc::new(AtomicU64::new(0));
    let by_other = Arc::new(AtomicU64::new(0));
    let by_none = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (server, seeded, id) = (server.clone(), seeded.clone(), id.clone());
        let (failures, done) = (failures.clone(), done.clone());
        let counters = (by_seed.clone(), by_other.clone(), by_none.clone());
        load.spawn(async move {
            // Bounded, whatever happens to the changes.
            for _ in 0..3_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let reply = get_token(&server, &seeded).await;
                if reply.status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let claims = hookd_tests::decode_unverified(
                    reply.json["access_token"].as_str().expect("token"),
                );
                let request_id = reply.headers["x-request-id"].to_str().expect("ascii");
                let counter = if claims.get("https://foo.com/claim").is_some() {
                    &counters.0
                } else if server
                    .hook_log
                    .recent(&id)
                    .iter()
                    .any(|entry| entry.request_id == request_id)
                {
                    &counters.1
                } else {
                    &counters.2
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let answered = || {
        by_seed.load(Ordering::Relaxed)
            + by_other.load(Ordering::Relaxed)
            + by_none.load(Ordering::Relaxed)
    };
    // Meanwhile: roll back and forth, disable and enable, 20 changes in all, each once
    // requests have been answered since the one before.
    for round in 0..20 {
        let rollback = format!("/api/v2/hooks/{id}/rollback");
        let hook = format!("/api/v2/hooks/{id}");
        let (method, path, body) = match round % 4 {
            0 => (Method::POST, &rollback, json!({"version": seed_sha})),
            1 => (Method::POST, &rollback, json!({"version": other_sha})),
            2 => (Method::PATCH, &hook, json!({"enabled": false})),
            _ => (Method::PATCH, &hook, json!({"enabled": true})),
        };
        let reply = call(&server, &admin, method, path, Some(body)).await;
        assert!(reply.status < 300, "change {round}: {}", reply.text);
        // Six tasks have at most six requests in flight, so of twelve answers at least six
        // were asked after the change.
        let before = answered();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while answered() < before + 12 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "no token requests were answered after change {round}"
        );
    }
    done.store(true, Ordering::Relaxed);
    while let Some(finished) = load.join_next().await {
        finished.expect("load task");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    let (seed_ran, other_ran) = (
        by_seed.load(Ordering::Relaxed),
        by_other.load(Ordering::Relaxed),
    );
    assert!(
        seed_ran > 0 && other_ran > 0,
        "both versions answered requests between the changes: seed {seed_ran}, other {other_ran}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_without_breaking_issued_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let kid = |token: &str| -> String {
        use base64::Engine as _;
        let header = token.split('.').next().expect("header");
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .expect("base64url"),
        )
        .expect("json");
        header["kid"].as_str().expect("kid").to_owned()
    };
    let jwks_kids = |server: &TestServer| {
        let url = format!("{}/.well-known/jwks.json", server.base);
        async move {
            let reply = send(Method::GET, &url, &[], "").await;
            reply.json["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k["kid"].as_str().expect("kid").to_owned())
                .collect::<Vec<_>>()
        }
    };

    let keys = call(&server, &admin, Method::GET, "/api/v2/keys/signing", None).await;
    assert_eq!(keys.status, 200, "{}", keys.text);
    let listed = keys.json.as_array().expect("list");
    assert_eq!(listed.len(), 6, "current and next for RS256, PS256, ES256");
    let next_rs256 = listed
        .iter()
        .find(|k| k["alg"] == "RS256" && k["next"] == true)
        .and_then(|k| k["kid"].as_str())
        .expect("a next RS256 key")
        .to_owned();
    assert!(
        jwks_kids(&server).await.contains(&next_rs256),
        "next keys are published early"
    );

    let before = get_token(&server, &seeded).await.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let old_kid = kid(&before);

    let rotated = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/keys/signing/rotate",
        None,
    )
    .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);

    let after = get_token(&server, &seeded).await.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        kid(&after),
        next_rs256,
        "the next key signs after a rotation"
    );
    let published = jwks_kids(&server).await;
    assert!(
        published.contains(&old_kid),
        "the previous key stays published"
    );
    assert_eq!(published.len(), 9);

    // A Management API call with a token signed by the now-previous key still works.
    let still = call(&server, &admin, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(still.status, 200);

    // Rotation needs its scope.
    let reader = {
        let audience = "https://hookd.test/api/v2/";
        hookd_tests::now(hookd::management::create_grant(
            &server.store,
            &seeded.client_id,
            audience,
            &["read:signing_keys"],
        ))
        .expect("grant");
        token_form(
            &server,
            Some((&seeded.client_id, &seeded.secret)),
            &[("grant_type", "client_credentials"), ("audience", audience)],
        )
        .await
        .json["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let refused = call(
        &server,
        &reader,
        Method::POST,
        "/api/v2/keys/signing/rotate",
        None,
    )
    .await;
    assert_management_error(&refused, 403, Some("insufficient_scope"), "");

    // A restart keeps the rotated set.
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let again = get_token(&server, &seeded).await.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(kid(&again), next_rs256);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_apis_and_grants_are_managed_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;

    // An API with scopes; defaults filled in.
    let api = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/resource-servers",
        Some(json!({
            "identifier": "https://billing.example/",
            "name": "Billing",
            "scopes": [{"value": "read:invoices", "description": "Read invoices"}, {"value": "pay"}],
        })),
    )
    .await;
    assert_eq!(api.status, 201, "{}", api.text);
    assert_eq!(api.json["token_lifetime"], 86_400);
    assert_eq!(api.json["signing_alg"], "RS256");
    assert_eq!(api.json["token_dialect"], "access_token");
    let api_id = api.json["id"].as_str().expect("id").to_owned();

    // A client: the secret is in the creation answer only.
    let created = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/clients",
        Some(json!({"name": "billing-worker", "app_type": "non_interactive", "client_metadata": {"tier": "gold"}})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let client_id = created.json["client_id"].as_str().expect("id").to_owned();
    let secret = created.json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let fetched = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/clients/{client_id}"),
        None,
    )
    .await;
    assert_eq!(fetched.status, 200);
    assert!(fetched.json.get("client_secret").is_none());
    assert!(!fetched.text.contains(&secret));
    let listed = call(&server, &admin, Method::GET, "/api/v2/clients", None).await;
    assert!(
        !listed.text.contains(&secret),
        "secrets never appear in listings"
    );
    assert!(!listed.text.contains("secret_hash"));

    // No grant yet: 403.
    let seeded = Seeded {
        client_id: client_id.clone(),
        secret: secret.clone(),
    };
    let ask = |seeded: Seeded| {
        let server = &server;
        async move {
            token_form(
                server,
                Some((&seeded.client_id, &seeded.secret)),
                &[
                    ("grant_type", "client_credentials"),
                    ("audience", "https://billing.example/"),
                ],
            )
            .await
        }
    };
    assert_oauth_error(&ask(seeded.clone()).await, 403, "access_denied", "");

    // A grant for one scope, then widened by PATCH.
    let grant = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": client_id, "audience": "https://billing.example/", "scope": ["read:invoices"]})),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    let grant_id = grant.json["id"].as_str().expect("id").to_owned();
    assert_eq!(ask(seeded.clone()).await.json["scope"], "read:invoices");
    let duplicate = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": client_id, "audience": "https://billing.example/", "scope": []})),
    )
    .await;
    assert_management_error(&duplicate, 409, Some("conflict"), "");
    let widened = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/client-grants/{grant_id}"),
        Some(json!({"scope": ["read:invoices", "pay"]})),
    )
    .await;
    assert_eq!(widened.status, 200, "{}", widened.text);
    assert_eq!(ask(seeded.clone()).await.json["scope"], "read:invoices pay");
    let filtered = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/client-grants?client_id={client_id}"),
        None,
    )
    .await;
    assert_eq!(filtered.json.as_array().expect("list").len(), 1);

    // Validation failures are 400 naming the field, and change nothing.
    for (path, body, field) in [
        (
            "/api/v2/clients",
            json!({"name": "x", "app_type": "robot"}),
            "app_type",
        ),
        (
            "/api/v2/clients",
            json!({"name": "x", "colour": "red"}),
            "colour",
        ),
        (
            "/api/v2/resource-servers",
            json!({"identifier": "https://x/", "token_lifetime": 0}),
            "token_lifetime",
        ),
        (
            "/api/v2/resource-servers",
            json!({"name": "no identifier"}),
            "identifier",
        ),
        (
            "/api/v2/client-grants",
            json!({"client_id": client_id, "audience": "https://billing.example/", "scope": ["admin"]}),
            "scope",
        ),
    ] {
        let reply = call(&server, &admin, Method::POST, path, Some(body)).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert!(
            reply.json["message"]
                .as_str()
                .expect("message")
                .contains(field),
            "{}",
            reply.text
        );
    }
    assert_eq!(
        server.store.clients().expect("clients").len(),
        2,
        "admin + billing-worker only"
    );
    let renamed = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/resource-servers/{api_id}"),
        Some(json!({"identifier": "https://elsewhere/"})),
    )
    .await;
    assert_management_error(&renamed, 400, Some("invalid_body"), "");

    // Rotating the secret: the old one stops working, the new one works.
    let rotated = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/v2/clients/{client_id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200);
    let new_secret = rotated.json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_oauth_error(&ask(seeded.clone()).await, 401, "invalid_client", "");
    let renewed = Seeded {
        client_id: client_id.clone(),
        secret: new_secret,
    };
    assert_eq!(ask(renewed.clone()).await.status, 200);

    // Deleting the API deletes its grants: the client is refused again, and a new API with
    // the same identifier starts with no grants.
    let deleted = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/resource-servers/{api_id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_oauth_error(&ask(renewed.clone()).await, 403, "access_denied", "");
    let gone = call(&server, &admin, Method::GET, "/api/v2/client-grants", None).await;
    assert!(!gone.text.contains(&grant_id));
    let recreated = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/resource-servers",
        Some(json!({"identifier": "https://billing.example/", "scopes": [{"value": "read:invoices", "description": ""}]})),
    )
    .await;
    assert_eq!(recreated.status, 201, "{}", recreated.text);
    let grants = call(&server, &admin, Method::GET, "/api/v2/client-grants", None).await;
    assert!(
        grants
            .json
            .as_array()
            .expect("list")
            .iter()
            .all(|grant| grant["audience"] != "https://billing.example/"),
        "{}",
        grants.text
    );
    assert_oauth_error(&ask(renewed.clone()).await, 403, "access_denied", "");

    // The Management API itself cannot be deleted.
    let apis = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/resource-servers",
        None,
    )
    .await;
    let management_id = apis
        .json
        .as_array()
        .expect("list")
        .iter()
        .find(|api| api["identifier"] == "https://hookd.test/api/v2/")
        .and_then(|api| api["id"].as_str())
        .expect("the Management API")
        .to_owned();
    let refused = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/resource-servers/{management_id}"),
        None,
    )
    .await;
    assert_management_error(
        &refused,
        400,
        Some("operation_not_supported"),
        "cannot be deleted",
    );

    let removed = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/clients/{client_id}"),
        None,
    )
    .await;
    assert_eq!(removed.status, 204);
    assert_oauth_error(&ask(renewed).await, 401, "invalid_client", "");
    let grants = call(&server, &admin, Method::GET, "/api/v2/client-grants", None).await;
    assert!(
        grants
            .json
            .as_array()
            .expect("list")
            .iter()
            .all(|grant| grant["client_id"] != client_id.as_str()),
        "deleting a client deletes its grants: {}",
        grants.text
    );
    let missing = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/clients/{client_id}"),
        None,
    )
    .await;
    // Like a missing hook: Auth0's 404 shape with the code and the id that was not found.
    assert_management_error(
        &missing,
        404,
        Some("inexistent_resource"),
        &format!("no client {client_id}"),
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_secrets_reach_the_hook_and_nowhere_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let id = create_hook(
        &server,
        &admin,
        json!({"name": "claims from metadata", "triggerId": "credentials-exchange"}),
    )
    .await;
    assert_eq!(
        upload(&server, &admin, &id, wasm(hookd_tests::METADATA_CLAIMS))
            .await
            .status,
        201
    );
    let secrets_path = format!("/api/v2/hooks/{id}/secrets");

    // Without its secret the hook denies with server_error.
    assert_oauth_error(&get_token(&server, &seeded).await, 500, "server_error", "");

    const VALUE: &str = "k-0f7e9c1d-very-secret";
    let added = call(
        &server,
        &admin,
        Method::POST,
        &secrets_path,
        Some(json!({"KEY_ID": VALUE})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json, json!({"KEY_ID": "_VALUE_NOT_SHOWN_"}));

    // The running hook sees the secret at once.
    let reply = get_token(&server, &seeded).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let payload: Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).expect("payload"))
                .expect("base64url"),
        )
        .expect("json")
    };
    assert_eq!(
        payload["https://hookd.example.com/key_id"], VALUE,
        "the hook put it in a claim"
    );

    // Auth0's semantics: POST of an existing name is 409, PATCH of an unknown name is 404.
    let again = call(
        &server,
        &admin,
        Method::POST,
        &secrets_path,
        Some(json!({"KEY_ID": "x"})),
    )
    .await;
    assert_management_error(&again, 409, Some("conflict"), "");
    let unknown = call(
        &server,
        &admin,
        Method::PATCH,
        &secrets_path,
        Some(json!({"NOPE": "x"})),
    )
    .await;
    assert_management_error(&unknown, 404, Some("inexistent_resource"), "");

    // At least 20 secrets per hook.
    let many: serde_json::Map<String, Value> = (0..25)
        .map(|i| (format!("EXTRA_{i}"), Value::from(format!("value-{i}"))))
        .collect();
    let bulk = call(
        &server,
        &admin,
        Method::POST,
        &secrets_path,
        Some(Value::Object(many)),
    )
    .await;
    assert_eq!(bulk.status, 201, "{}", bulk.text);
    let listed = call(&server, &admin, Method::GET, &secrets_path, None).await;
    assert_eq!(listed.json.as_object().expect("object").len(), 26);
    assert!(!listed.text.contains(VALUE));

    // Nowhere else: not in hook responses, hook logs or the files of the data directory.
    for path in [
        format!("/api/v2/hooks/{id}"),
        format!("/api/v2/hooks/{id}/logs"),
        "/api/v2/hooks".to_owned(),
    ] {
        let reply = call(&server, &admin, Method::GET, &path, None).await;
        assert_eq!(reply.status, 200);
        assert!(!reply.text.contains(VALUE), "{path} shows the secret");
    }
    server.store.flush().expect("flush");
    let mut files = vec![dir.path().to_owned()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            let bytes = std::fs::read(&path).expect("file");
            let found = bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes());
            assert!(!found, "{} holds the secret in clear", path.display());
        }
    }

    // Update, then delete: the hook follows.
    let changed = call(
        &server,
        &admin,
        Method::PATCH,
        &secrets_path,
        Some(json!({"KEY_ID": "k-2"})),
    )
    .await;
    assert_eq!(changed.status, 201);
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let reply = get_token(&server, &seeded).await;
    assert_eq!(
        reply.status, 200,
        "secrets survive a restart: {}",
        reply.text
    );
    let admin = admin_token(&server, dir.path()).await;
    let missing = call(
        &server,
        &admin,
        Method::DELETE,
        &secrets_path,
        Some(json!(["KEY_ID", "NOPE"])),
    )
    .await;
    assert_eq!(missing.status, 404, "an unknown name deletes nothing");
    let deleted = call(
        &server,
        &admin,
        Method::DELETE,
        &secrets_path,
        Some(json!(["KEY_ID"])),
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_oauth_error(&get_token(&server, &seeded).await, 500, "server_error", "");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_hooks_log_streams_new_invocations() {
    use http_body_util::BodyExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(SEED));
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let id = server.store.hooks().expect("hooks")[0].id.clone();

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::get(format!("{}/api/v2/hooks/{id}/logs?follow", server.base))
        .header("authorization", format!("Bearer {admin}"))
        .body(http_body_util::Full::default())
        .expect("request");
    let response = client.request(request).await.expect("follow");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.into_body();

    let reply = get_token(&server, &seeded).await;
    assert_eq!(reply.status, 200);
    let request_id = reply.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
        .await
        .expect("a line arrives")
        .expect("a frame")
        .expect("data");
    let data = frame.into_data().expect("data frame");
    let line = std::str::from_utf8(&data).expect("utf-8");
    assert!(line.ends_with('\n'));
    let entry: Value = serde_json::from_str(line.trim_end()).expect("json line");
    assert_eq!(entry["request_id"], request_id.as_str());
    assert_eq!(entry["outcome"]["result"], "allowed");
    assert_eq!(server.hook_log.followers(), 1);

    // The client goes away: the stream ends, at the latest when the next entry finds nobody
    // to write to, and the server lets the follower go.
    drop(body);
    drop(client);
    let gone = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while server.hook_log.followers() > 0 {
            let reply = get_token(&server, &seeded).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the follower outlived its client");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_like_auth0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    for i in 0..7 {
        let created = call(
            &server,
            &admin,
            Method::POST,
            "/api/v2/clients",
            Some(json!({"name": format!("c{i}")})),
        )
        .await;
        assert_eq!(created.status, 201);
    }
    // 8 clients in all with the admin.
    let page = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/clients?per_page=3&page=2&include_totals=true",
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.json["start"], 6);
    assert_eq!(page.json["limit"], 3);
    assert_eq!(page.json["total"], 8);
    assert_eq!(page.json["clients"].as_array().expect("clients").len(), 2);
    let plain = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/clients?per_page=5",
        None,
    )
    .await;
    assert_eq!(plain.json.as_array().expect("array").len(), 5);
    let bad = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/clients?per_page=500",
        None,
    )
    .await;
    assert_management_error(&bad, 400, Some("invalid_query_string"), "per_page");
    assert!(
        bad.json["message"]
            .as_str()
            .expect("message")
            .contains("per_page")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_management_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    // Shorten the Management API's token lifetime to two seconds, through the API itself.
    // (Timestamps are whole seconds: a 1 s token could expire between issue and use.)
    let apis = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/resource-servers",
        None,
    )
    .await;
    let management_id = apis.json[0]["id"].as_str().expect("id").to_owned();
    let shortened = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/resource-servers/{management_id}"),
        Some(json!({"token_lifetime": 2})),
    )
    .await;
    assert_eq!(shortened.status, 200, "{}", shortened.text);
    let short_lived = admin_token(&server, dir.path()).await;
    let exp = hookd_tests::payload(&short_lived)["exp"]
        .as_u64()
        .expect("exp");
    // Poll until the token is refused (bounded): it works while the clock is before `exp`,
    // and is refused as expired only once the clock has reached it, however slow the machine.
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let expired = loop {
        let before = unix_now();
        let reply = call(&server, &short_lived, Method::GET, "/api/v2/hooks", None).await;
        let after = unix_now();
        if reply.status == 200 {
            assert!(before < exp, "accepted at {before}, after its exp {exp}");
        } else {
            assert!(after >= exp, "refused at {after}, before its exp {exp}");
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a 2 s token still worked after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(expired.status, 401, "{}", expired.text);
    assert!(
        expired.json["message"]
            .as_str()
            .expect("message")
            .contains("Expired")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_choose_the_admin_credentials_and_the_secrets_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32])
    };
    let configure = |config: &mut hookd::app::ServeConfig| {
        config.admin_credentials = Some((
            "ops-admin".to_owned(),
            "a-long-operator-chosen-secret".to_owned(),
        ));
        config.secrets_key = Some(key.clone());
    };
    let server = TestServer::start_configured(dir.path(), configure).await;
    assert!(
        !dir.path().join("secrets.key").exists(),
        "the key comes from the configuration"
    );
    let written = admin(dir.path());
    assert_eq!(written["client_id"], "ops-admin");
    assert!(
        written.get("client_secret").is_none(),
        "an operator-chosen secret is not written down"
    );
    let reply = token_form(
        &server,
        Some(("ops-admin", "a-long-operator-chosen-secret")),
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://hookd.test/api/v2/"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Limits and failure policy are settable per hook.
    let created = call(
        &server,
        &token,
        Method::POST,
        "/api/v2/hooks",
        Some(json!({"name": "tuned", "triggerId": "credentials-exchange", "limits": {"fuel": 5000000}, "failure_policy": "fail-open"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["limits"]["fuel"], 5_000_000);
    assert_eq!(
        created.json["limits"]["timeout_ms"], 1_000,
        "omitted limits keep their defaults"
    );
    assert_eq!(created.json["failure_policy"], "fail-open");
    let id = created.json["id"].as_str().expect("id").to_owned();
    let invalid = call(
        &server,
        &token,
        Method::PATCH,
        &format!("/api/v2/hooks/{id}"),
        Some(json!({"limits": {"memory_bytes": 0}})),
    )
    .await;
    assert_management_error(&invalid, 400, Some("invalid_body"), "");
    assert!(
        invalid.json["message"]
            .as_str()
            .expect("message")
            .contains("memory_bytes")
    );
    let secret = call(
        &server,
        &token,
        Method::POST,
        &format!("/api/v2/hooks/{id}/secrets"),
        Some(json!({"S": "v"})),
    )
    .await;
    assert_eq!(secret.status, 201);
    assert_eq!(upload(&server, &token, &id, wasm(SEED)).await.status, 201);
    server.stop().await;

    // The same key opens the secrets after a restart.
    let server = TestServer::start_configured(dir.path(), configure).await;
    server.stop().await;
    // Another key opens nothing that is sealed (the client-secret key, the signing keys, the
    // hook's secrets): the server refuses to start.
    let mut other =
        hookd::app::ServeConfig::new(dir.path().to_owned(), "127.0.0.1:0".parse().expect("addr"));
    other.issuer = Some("https://hookd.test/".to_owned());
    other.secrets_key = Some({
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([8u8; 32])
    });
    let refused = hookd::app::prepare(other)
        .await
        .expect_err("a wrong secrets key is refused");
    assert!(
        refused.to_string().contains("could not be decrypted"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remaining_endpoints_answer_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;

    // PATCH a client: metadata reaches hooks, grant types gate the token endpoint.
    let patched = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/clients/{}", seeded.client_id),
        Some(
            json!({"client_metadata": {"tier": "platinum"}, "grant_types": ["authorization_code"]}),
        ),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["client_metadata"]["tier"], "platinum");
    assert_eq!(
        get_token(&server, &seeded).await.json["error"],
        "unauthorized_client"
    );
    let restored = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/clients/{}", seeded.client_id),
        Some(json!({"grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(restored.status, 200);
    assert_eq!(get_token(&server, &seeded).await.status, 200);
    let unknown = call(
        &server,
        &admin,
        Method::PATCH,
        "/api/v2/clients/nobody",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_management_error(&unknown, 404, Some("inexistent_resource"), "");

    // DELETE a grant: the client is refused from then on.
    let grants = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/client-grants?audience={API}"),
        None,
    )
    .await;
    let grant_id = grants.json[0]["id"].as_str().expect("id").to_owned();
    let deleted = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/client-grants/{grant_id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_oauth_error(&get_token(&server, &seeded).await, 403, "access_denied", "");
    let again = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/client-grants/{grant_id}"),
        None,
    )
    .await;
    assert_management_error(&again, 404, Some("inexistent_resource"), "");

    // Hook list filters.
    for name in ["first", "second"] {
        let created = call(
            &server,
            &admin,
            Method::POST,
            "/api/v2/hooks",
            Some(json!({"name": name, "triggerId": "credentials-exchange"})),
        )
        .await;
        assert_eq!(created.status, 201);
    }
    let enabled = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/hooks?enabled=true",
        None,
    )
    .await;
    assert_eq!(enabled.json.as_array().expect("list").len(), 1);
    assert_eq!(
        enabled.json[0]["name"], "first",
        "only the first hook of a trigger starts enabled"
    );
    let by_trigger = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/hooks?triggerId=credentials-exchange",
        None,
    )
    .await;
    assert_eq!(by_trigger.json.as_array().expect("list").len(), 2);
    let bad_filter = call(
        &server,
        &admin,
        Method::GET,
        "/api/v2/hooks?enabled=maybe",
        None,
    )
    .await;
    assert_management_error(&bad_filter, 400, Some("invalid_query_string"), "enabled");
    let bad_trigger = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/hooks",
        Some(json!({"name": "x", "triggerId": "post-login"})),
    )
    .await;
    assert_management_error(&bad_trigger, 400, Some("invalid_body"), "");
    assert!(
        bad_trigger.json["message"]
            .as_str()
            .expect("message")
            .contains("triggerId")
    );

    // Wrong methods and unknown paths.
    assert_eq!(
        call(&server, &admin, Method::PUT, "/api/v2/clients", None)
            .await
            .status,
        405
    );
    assert_eq!(
        call(
            &server,
            &admin,
            Method::GET,
            "/api/v2/keys/signing/rotate",
            None
        )
        .await
        .status,
        405
    );
    assert_eq!(
        call(&server, &admin, Method::GET, "/api/v2/nothing-here", None)
            .await
            .status,
        404
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_token_verifies_with_the_signing_secret_exactly_as_the_api_shows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let api = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/resource-servers",
        Some(json!({
            "identifier": "https://hs.example/",
            "name": "HS",
            "signing_alg": "HS256",
            "scopes": [{"value": "read"}],
        })),
    )
    .await;
    assert_eq!(api.status, 201, "{}", api.text);
    let signing_secret = api.json["signing_secret"]
        .as_str()
        .expect("the secret is shown on create")
        .to_owned();
    let client = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/clients",
        Some(json!({"name": "hs-worker", "app_type": "non_interactive"})),
    )
    .await;
    assert_eq!(client.status, 201, "{}", client.text);
    let client_id = client.json["client_id"].as_str().expect("id").to_owned();
    let secret = client.json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let grant = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": client_id, "audience": "https://hs.example/", "scope": ["read"]})),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    let reply = token_form(
        &server,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://hs.example/"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json["access_token"].as_str().expect("token");
    // What `jwt.verify(token, secret)`, PyJWT and jose do: the text itself is the key.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["https://hs.example/"]);
    validation.set_issuer(&["https://hookd.test/"]);
    let verified = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(signing_secret.as_bytes()),
        &validation,
    );
    assert!(verified.is_ok(), "{verified:?}");
    server.stop().await;
}

/// Whether the next token carries the seed hook's work, and whether the API says hook `id`
/// is enabled: the two must always agree.
/// A token for the seeded client: its scope, and the `x-request-id` the server answered with.
async fn scope_and_request_id(server: &TestServer, seeded: &Seeded) -> (Value, String) {
    let reply = get_token(server, seeded).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let request_id = reply.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    (reply.json["scope"].clone(), request_id)
}

async fn seed_runs(server: &TestServer, seeded: &Seeded) -> bool {
    let reply = get_token(server, seeded).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["scope"] == "read:reports write:reports extra"
}

async fn enabled(server: &TestServer, admin: &str, id: &str) -> bool {
    let hook = call(
        server,
        admin,
        Method::GET,
        &format!("/api/v2/hooks/{id}"),
        None,
    )
    .await;
    assert_eq!(hook.status, 200, "{}", hook.text);
    hook.json["enabled"].as_bool().expect("enabled")
}

/// Enables hook `id` through the API (Auth0 answers a hook PATCH with 201).
async fn enable(server: &TestServer, admin: &str, id: &str) {
    let patched = call(
        server,
        admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(patched.status, 201, "{}", patched.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_api_says_about_hooks_is_what_the_next_token_carries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let create = |body: Value| {
        let (server, admin) = (&server, &admin);
        async move {
            let created = call(server, admin, Method::POST, "/api/v2/hooks", Some(body)).await;
            assert_eq!(created.status, 201, "{}", created.text);
            created.json["id"].as_str().expect("id").to_owned()
        }
    };

    // An explicit `enabled: false` is honoured, even for the trigger's first hook.
    let first =
        create(json!({"name": "first", "triggerId": "credentials-exchange", "enabled": false}))
            .await;
    assert!(!enabled(&server, &admin, &first).await);
    assert_eq!(
        upload(&server, &admin, &first, wasm(SEED)).await.status,
        201
    );
    assert!(!seed_runs(&server, &seeded).await, "a disabled hook runs");

    // Enabled, it runs.
    enable(&server, &admin, &first).await;
    assert!(enabled(&server, &admin, &first).await);
    assert!(seed_runs(&server, &seeded).await);

    // A second hook created enabled (no module yet) disables the first: nothing runs.
    let second =
        create(json!({"name": "second", "triggerId": "credentials-exchange", "enabled": true}))
            .await;
    assert!(enabled(&server, &admin, &second).await);
    assert!(!enabled(&server, &admin, &first).await);
    assert!(
        !seed_runs(&server, &seeded).await,
        "the API says the seed hook is disabled, yet it still runs"
    );

    // Back to the first, then enable a third hook that has no module: again nothing runs.
    enable(&server, &admin, &first).await;
    assert!(!enabled(&server, &admin, &second).await);
    assert!(seed_runs(&server, &seeded).await);
    let third = create(json!({"name": "third", "triggerId": "credentials-exchange"})).await;
    assert!(
        !enabled(&server, &admin, &third).await,
        "only the first of a trigger defaults on"
    );
    assert!(seed_runs(&server, &seeded).await);
    enable(&server, &admin, &third).await;
    assert!(!enabled(&server, &admin, &first).await);
    assert!(
        !seed_runs(&server, &seeded).await,
        "enabling a hook with no module left the previous one running"
    );

    // Deleting the enabled hook leaves nothing running and nothing enabled.
    let deleted = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/hooks/{third}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(!enabled(&server, &admin, &first).await);
    assert!(!seed_runs(&server, &seeded).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_modules_are_bounded_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let id = create_hook(
        &server,
        &admin,
        json!({"name": "bounded", "triggerId": "credentials-exchange"}),
    )
    .await;
    let secrets = format!("/api/v2/hooks/{id}/secrets");

    // A value of 4 KB is taken; one byte more is refused.
    let at_limit = call(
        &server,
        &admin,
        Method::POST,
        &secrets,
        Some(json!({"BIG": "v".repeat(4096)})),
    )
    .await;
    assert_eq!(at_limit.status, 201, "{}", at_limit.text);
    let over = call(
        &server,
        &admin,
        Method::POST,
        &secrets,
        Some(json!({"BIGGER": "v".repeat(4097)})),
    )
    .await;
    assert_management_error(&over, 400, Some("invalid_body"), "4096");

    // Fifty secrets in all; the fifty-first is refused and nothing of that call is added.
    let many: serde_json::Map<String, Value> =
        (1..50).map(|n| (format!("S{n}"), json!("v"))).collect();
    let filled = call(
        &server,
        &admin,
        Method::POST,
        &secrets,
        Some(Value::Object(many)),
    )
    .await;
    assert_eq!(filled.status, 201, "{}", filled.text);
    let one_more = call(
        &server,
        &admin,
        Method::POST,
        &secrets,
        Some(json!({"S50": "v"})),
    )
    .await;
    assert_management_error(&one_more, 400, Some("invalid_body"), "50");
    let listed = call(&server, &admin, Method::GET, &secrets, None).await;
    assert_eq!(listed.json.as_object().expect("names").len(), 50);

    // A module over 64 MiB is refused before it is read to the end, and nothing is stored.
    let oversized = upload(&server, &admin, &id, vec![0u8; (64 << 20) + 1]).await;
    assert_eq!(oversized.status, 413, "{}", oversized.text);
    let hook = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/hooks/{id}"),
        None,
    )
    .await;
    assert_eq!(hook.json["versions"], json!([]), "{}", hook.text);
    server.stop().await;
}
