//! The token server as clients see it: a real server on 127.0.0.1, a real HTTP client, tokens
//! verified with an independent JWT library against the published JWKS.

use std::time::Duration;

use hookd::management::{self, NewApi};
use hookd::model::FailurePolicy;
use hookd::model::{HookScopePolicy, SigningAlg, TokenDialect};
use hookd::store::SledStore as Store;
use hookd_tests::{
    API, HOSTILE, SEED, Seeded, TestServer, add_api, get_token, header, jwks, seed, send,
    token_form, verify,
};
use http::Method;
use jsonwebtoken::Algorithm;
use serde_json::json;

fn api(identifier: &str) -> NewApi {
    NewApi::new(identifier, identifier, &["read:reports"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_hook_adds_its_claim_and_scope_to_a_verified_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(SEED));
    let server = TestServer::start(dir.path()).await;

    let reply = token_form(
        &server,
        Some((&seeded.client_id, &seeded.secret)),
        &[("grant_type", "client_credentials"), ("audience", API)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["pragma"], "no-cache");
    assert_eq!(reply.json["token_type"], "Bearer");
    assert_eq!(reply.json["expires_in"], 86_400);
    assert_eq!(reply.json["scope"], "read:reports write:reports extra");

    let token = reply.json["access_token"].as_str().expect("token");
    assert_eq!(header(token)["typ"], "JWT");
    let request_id = reply.headers["x-request-id"].to_str().expect("ascii");
    let logged = server
        .hook_log
        .recent(&server.store.hooks().expect("hooks")[0].id);
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].request_id, request_id);
    assert_eq!(logged[0].outcome, hookd::hooklog::LoggedOutcome::Allowed);
    assert!(logged[0].fuel_used > 0);
    let claims = verify(&server, token, Algorithm::RS256, API).await;
    assert_eq!(claims["https://foo.com/claim"], "bar");
    assert_eq!(claims["scope"], "read:reports write:reports extra");
    assert_eq!(claims["iss"], "https://hookd.test/");
    assert_eq!(claims["sub"], format!("{}@clients", seeded.client_id));
    assert_eq!(claims["azp"], seeded.client_id.as_str());
    assert_eq!(claims["gty"], "client-credentials");
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        86_400
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_and_client_secret_post_work_and_scope_narrows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let body = json!({
        "grant_type": "client_credentials",
        "client_id": seeded.client_id,
        "client_secret": seeded.secret,
        "audience": API,
        "scope": "read:reports",
    });
    let reply = send(
        Method::POST,
        &format!("{}/oauth/token", server.base),
        &[("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["scope"], "read:reports");
    let token = reply.json["access_token"].as_str().expect("token");
    let claims = verify(&server, token, Algorithm::RS256, API).await;
    assert_eq!(claims["scope"], "read:reports");
    assert!(
        claims.get("https://foo.com/claim").is_none(),
        "no hook is enabled"
    );

    // RFC 8707 `resource` names the API as `audience` does.
    let reply = token_form(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &seeded.client_id),
            ("client_secret", &seeded.secret),
            ("resource", API),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_and_both_profiles_verify_against_the_jwks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let cases = [
        (SigningAlg::RS256, Algorithm::RS256),
        (SigningAlg::PS256, Algorithm::PS256),
        (SigningAlg::ES256, Algorithm::ES256),
        (SigningAlg::HS256, Algorithm::HS256),
    ];
    for (signing_alg, algorithm) in cases {
        for dialect in [TokenDialect::Auth0, TokenDialect::Rfc9068] {
            let identifier =
                format!("https://{:?}-{:?}.example/", signing_alg, dialect).to_lowercase();
            let mut new = api(&identifier);
            new.signing_alg = signing_alg;
            new.token_dialect = dialect;
            new.token_lifetime = 600;
            add_api(&server, &seeded.client_id, new);
            let reply = token_form(
                &server,
                Some((&seeded.client_id, &seeded.secret)),
                &[
                    ("grant_type", "client_credentials"),
                    ("audience", &identifier),
                ],
            )
            .await;
            assert_eq!(reply.status, 200, "{identifier}: {}", reply.text);
            assert_eq!(reply.json["expires_in"], 600);
            let token = reply.json["access_token"].as_str().expect("token");
            let head = header(token);
            assert_eq!(head["alg"], signing_alg.as_str());
            let claims = verify(&server, token, algorithm, &identifier).await;
            match dialect {
                TokenDialect::Auth0 => {
                    assert_eq!(head["typ"], "JWT");
                    assert_eq!(claims["gty"], "client-credentials");
                }
                TokenDialect::Rfc9068 => {
                    assert_eq!(head["typ"], "at+jwt");
                    assert_eq!(claims["client_id"], seeded.client_id.as_str());
                    assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() >= 16));
                }
            }
        }
    }
    // The JWKS publishes public keys only: current and next per asymmetric algorithm.
    let set = jwks(&server).await;
    assert_eq!(set.keys.len(), 6, "current and next key per algorithm");
    let raw = send(
        Method::GET,
        &format!("{}/.well-known/jwks.json", server.base),
        &[],
        "",
    )
    .await;
    for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"qi\""] {
        assert!(!raw.text.contains(private), "JWKS leaks {private}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_error_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let id = seeded.client_id.as_str();
    let secret = seeded.secret.as_str();
    let ok = [("grant_type", "client_credentials"), ("audience", API)];

    let check = |reply: &hookd_tests::Reply, status: u16, error: &str| {
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.json["error"], error, "{}", reply.text);
        assert_eq!(reply.headers["cache-control"], "no-store");
    };

    let reply = token_form(&server, Some((id, secret)), &[("audience", API)]).await;
    check(&reply, 400, "invalid_request");
    assert_eq!(
        reply.json["error_description"],
        "Missing required parameter: grant_type"
    );

    let reply = token_form(
        &server,
        Some((id, secret)),
        &[("grant_type", "password"), ("audience", API)],
    )
    .await;
    check(&reply, 400, "unsupported_grant_type");

    let reply = token_form(&server, Some(("nobody", secret)), &ok).await;
    check(&reply, 401, "invalid_client");
    assert!(
        reply.headers["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic")
    );

    let reply = token_form(&server, Some((id, "wrong-secret")), &ok).await;
    check(&reply, 401, "invalid_client");
    assert!(reply.headers.contains_key("www-authenticate"));

    let reply = token_form(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("audience", API),
            ("client_id", id),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    check(&reply, 401, "invalid_client");
    assert!(
        !reply.headers.contains_key("www-authenticate"),
        "post auth gets no challenge"
    );

    let reply = token_form(&server, None, &ok).await;
    check(&reply, 401, "invalid_client");

    let reply = token_form(
        &server,
        Some((id, secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", API),
            ("client_secret", secret),
        ],
    )
    .await;
    check(&reply, 400, "invalid_request");

    let reply = token_form(
        &server,
        Some((id, secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://nowhere.example/"),
        ],
    )
    .await;
    check(&reply, 403, "access_denied");
    assert_eq!(
        reply.json["error_description"],
        "Service not found: https://nowhere.example/"
    );

    hookd_tests::now(management::create_api(
        &server.store,
        &hookd_tests::test_secret_box(),
        api("https://ungranted.example/"),
    ))
    .expect("api");
    let reply = token_form(
        &server,
        Some((id, secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://ungranted.example/"),
        ],
    )
    .await;
    check(&reply, 403, "access_denied");
    assert!(
        reply.json["error_description"]
            .as_str()
            .expect("text")
            .starts_with("Client is not authorized to access \"https://ungranted.example/\"")
    );

    let reply = token_form(
        &server,
        Some((id, secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", API),
            ("scope", "read:reports admin"),
        ],
    )
    .await;
    check(&reply, 403, "access_denied");
    assert_eq!(
        reply.json["error_description"],
        "Client has not been granted scopes: admin"
    );

    let reply = token_form(
        &server,
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    check(&reply, 403, "access_denied");

    // A client not allowed the client-credentials grant.
    let mut restricted = server.store.client(id).expect("store").expect("client");
    restricted.client_id = "no-cc-client".to_owned();
    restricted.grant_types = vec!["authorization_code".to_owned()];
    server.store.insert_client(&restricted).expect("insert");
    let reply = token_form(&server, Some(("no-cc-client", secret)), &ok).await;
    check(&reply, 403, "unauthorized_client");

    // Repeated parameters are an error (RFC 6749 §3.2).
    let reply = send(
        Method::POST,
        &format!("{}/oauth/token", server.base),
        &[("content-type", "application/x-www-form-urlencoded")],
        "grant_type=client_credentials&grant_type=client_credentials",
    )
    .await;
    check(&reply, 400, "invalid_request");

    let token_url = format!("{}/oauth/token", server.base);
    let reply = send(
        Method::POST,
        &token_url,
        &[("content-type", "text/plain")],
        "grant_type=x",
    )
    .await;
    check(&reply, 400, "invalid_request");

    let reply = send(
        Method::POST,
        &token_url,
        &[("content-type", "application/json")],
        "{not json",
    )
    .await;
    check(&reply, 400, "invalid_request");

    // A repeated member of a JSON body is refused like a repeated form parameter.
    let reply = send(
        Method::POST,
        &token_url,
        &[("content-type", "application/json")],
        format!(
            r#"{{"grant_type":"client_credentials","client_id":"{id}","client_secret":"{secret}","audience":"{API}","client_id":"another"}}"#
        ),
    )
    .await;
    check(&reply, 400, "invalid_request");
    assert_eq!(
        reply.json["error_description"],
        "Parameter client_id is repeated"
    );

    // Thousands of distinct parameter names are answered, as a client error, not a stall.
    let many: Vec<String> = (0..12_000).map(|i| format!("{i:x}")).collect();
    let reply = send(
        Method::POST,
        &token_url,
        &[("content-type", "application/x-www-form-urlencoded")],
        many.join("&"),
    )
    .await;
    check(&reply, 400, "invalid_request");

    let big = format!("grant_type=client_credentials&pad={}", "x".repeat(70_000));
    let reply = send(
        Method::POST,
        &token_url,
        &[("content-type", "application/x-www-form-urlencoded")],
        big,
    )
    .await;
    check(&reply, 413, "invalid_request");

    let reply = send(Method::GET, &token_url, &[], "").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "POST");

    let reply = send(Method::GET, &format!("{}/nope", server.base), &[], "").await;
    assert_eq!(reply.status, 404);

    // The server still issues tokens after all of that.
    let reply = token_form(&server, Some((id, secret)), &ok).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_form_decoded_before_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    let escaped_id = format!(
        "%{:02X}{}",
        seeded.client_id.as_bytes()[0],
        &seeded.client_id[1..]
    );
    let reply = token_form(
        &server,
        Some((&escaped_id, &seeded.secret)),
        &[("grant_type", "client_credentials"), ("audience", API)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.stop().await;
}

/// A server with the hostile guest enabled; its behaviour follows the audience.
async fn hostile_server(dir: &std::path::Path, policy: FailurePolicy) -> (TestServer, Seeded) {
    let seeded = seed(dir, Some(HOSTILE));
    if policy == FailurePolicy::FailOpen {
        let store = Store::open(dir).expect("store");
        let mut hook = store.hooks().expect("hooks").remove(0);
        hook.failure_policy = FailurePolicy::FailOpen;
        store.update_hook(&hook).expect("update");
        store.flush().expect("flush");
    }
    let server = TestServer::start(dir).await;
    for audience in [
        "deny",
        "loop",
        "panic",
        "memory-bomb",
        "invalid-json",
        "restricted-claims",
    ] {
        add_api(&server, &seeded.client_id, api(audience));
    }
    (server, seeded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_denials_and_failures_map_to_oauth_errors_without_leaking_details() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, seeded) = hostile_server(dir.path(), FailurePolicy::FailClosed).await;
    let request = |audience: &'static str| {
        let (id, secret) = (seeded.client_id.clone(), seeded.secret.clone());
        let server = &server;
        async move {
            token_form(
                server,
                Some((&id, &secret)),
                &[("grant_type", "client_credentials"), ("audience", audience)],
            )
            .await
        }
    };

    let denied = request("deny").await;
    assert_eq!(denied.status, 400, "{}", denied.text);
    assert_eq!(denied.json["error"], "invalid_scope");
    assert_eq!(
        denied.json["error_description"],
        format!("scope not allowed for {}", seeded.client_id)
    );

    for audience in ["loop", "panic", "memory-bomb", "invalid-json"] {
        let failed = request(audience).await;
        assert_eq!(failed.status, 500, "{audience}: {}", failed.text);
        assert_eq!(failed.json["error"], "server_error");
        let text = failed.text.to_lowercase();
        for leak in [
            "fuel", "panicked", "memory", "json", "trap", "wasm", "hostile",
        ] {
            assert!(
                !text.contains(leak),
                "{audience} response leaks {leak:?}: {text}"
            );
        }
    }

    let restricted = request("restricted-claims").await;
    assert_eq!(restricted.status, 200, "{}", restricted.text);
    let token = restricted.json["access_token"].as_str().expect("token");
    let claims = verify(&server, token, Algorithm::RS256, "restricted-claims").await;
    assert_eq!(claims["https://example.com/ok"], true);
    assert_eq!(
        claims["iss"], "https://hookd.test/",
        "the hook cannot replace iss"
    );
    assert_eq!(claims["sub"], format!("{}@clients", seeded.client_id));
    assert_eq!(claims["scope"], "read:reports");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_hook_that_fails_still_gets_a_token_without_its_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, seeded) = hostile_server(dir.path(), FailurePolicy::FailOpen).await;
    let reply = token_form(
        &server,
        Some((&seeded.client_id, &seeded.secret)),
        &[("grant_type", "client_credentials"), ("audience", "panic")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["scope"], "read:reports");
    // The failure is in the hook log under the response's request id.
    let request_id = reply.headers["x-request-id"].to_str().expect("ascii");
    let hook_id = server.store.hooks().expect("hooks").remove(0).id;
    let entries = server.hook_log.recent(&hook_id);
    let entry = entries
        .iter()
        .find(|e| e.request_id == request_id)
        .expect("an entry for the request");
    assert_eq!(entry.client_id, seeded.client_id);
    assert!(matches!(
        entry.outcome,
        hookd::hooklog::LoggedOutcome::Failed { ref kind, token_issued: true, .. } if kind == "trap"
    ));
    assert!(
        entry
            .log
            .output
            .contains("hostile guest panicked on purpose")
    );
    // A denial is not a failure: it is honoured even when failing open.
    let reply = token_form(
        &server,
        Some((&seeded.client_id, &seeded.secret)),
        &[("grant_type", "client_credentials"), ("audience", "deny")],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intersect_policy_keeps_only_granted_hook_scopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(SEED));
    let server = TestServer::start(dir.path()).await;
    let mut new = api("https://intersect.example/");
    new.hook_scope_policy = HookScopePolicy::IntersectWithGrant;
    add_api(&server, &seeded.client_id, new);
    let reply = token_form(
        &server,
        Some((&seeded.client_id, &seeded.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://intersect.example/"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["scope"], "read:reports",
        "`extra` is not granted, so it is dropped"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents_and_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let reply = send(Method::GET, &format!("{}{path}", server.base), &[], "").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json["issuer"], "https://hookd.test/");
        assert_eq!(
            reply.json["token_endpoint"],
            "https://hookd.test/oauth/token"
        );
        assert_eq!(
            reply.json["jwks_uri"],
            "https://hookd.test/.well-known/jwks.json"
        );
        assert_eq!(
            reply.json["grant_types_supported"],
            json!(["client_credentials"])
        );
        assert_eq!(
            reply.json["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post"])
        );
    }
    let health = send(Method::GET, &format!("{}/healthz", server.base), &[], "").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "ok");
    assert!(health.headers.contains_key("x-request-id"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_keys_clients_and_hooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(SEED));
    let form = [("grant_type", "client_credentials"), ("audience", API)];

    let first = TestServer::start(dir.path()).await;
    let reply = token_form(&first, Some((&seeded.client_id, &seeded.secret)), &form).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let old_token = reply.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let old_kid = header(&old_token)["kid"].clone();
    first.stop().await;

    let second = TestServer::start(dir.path()).await;
    // A token from before the restart still verifies against the new process's JWKS.
    let claims = verify(&second, &old_token, Algorithm::RS256, API).await;
    assert_eq!(claims["https://foo.com/claim"], "bar");
    let reply = token_form(&second, Some((&seeded.client_id, &seeded.secret)), &form).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json["access_token"].as_str().expect("token");
    assert_eq!(header(token)["kid"], old_kid);
    assert_eq!(reply.json["scope"], "read:reports write:reports extra");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_server_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(HOSTILE));
    {
        // The sleeping hook holds the only slot for up to 5 s: room to observe a 503 even
        // on a loaded machine.
        let store = Store::open(dir.path()).expect("store");
        let mut hook = store.hooks().expect("hooks").remove(0);
        hook.limits.timeout_ms = 5_000;
        store.update_hook(&hook).expect("update");
        store.flush().expect("flush");
    }
    let limits = hookd::http::HttpLimits {
        max_in_flight: 1,
        ..Default::default()
    };
    let server = TestServer::start_with(dir.path(), limits).await;
    add_api(&server, &seeded.client_id, api("sleep"));
    let slow = {
        let (base, id, secret) = (
            server.base.clone(),
            seeded.client_id.clone(),
            seeded.secret.clone(),
        );
        tokio::spawn(async move {
            let body = hookd_tests::form_body(&[
                ("grant_type", "client_credentials"),
                ("audience", "sleep"),
                ("client_id", &id),
                ("client_secret", &secret),
            ]);
            send(
                Method::POST,
                &format!("{base}/oauth/token"),
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await
        })
    };
    // While the sleeping hook holds the only token slot, other token requests are refused;
    // health (like JWKS and the Management API) has slots of its own and still answers.
    let mut saw_503 = false;
    for _ in 0..250 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let reply = get_token(&server, &seeded).await;
        if reply.status == 503 {
            assert_eq!(reply.headers["retry-after"], "1");
            assert_eq!(reply.json["error"], "temporarily_unavailable");
            let health = send(Method::GET, &format!("{}/healthz", server.base), &[], "").await;
            assert_eq!(health.status, 200, "{}", health.text);
            saw_503 = true;
            break;
        }
    }
    assert!(saw_503, "no 503 while the only slot was busy");
    let slow = slow.await.expect("task");
    // The hook timed out: a generic server_error, the detail only in the hook log.
    hookd_tests::assert_oauth_error(&slow, 500, "server_error", "");
    assert!(!slow.text.contains("time"), "{}", slow.text);
    // Once the slot is free again, requests succeed.
    let reply = get_token(&server, &seeded).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_failure_policy_set_through_the_api_govern_the_token_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    add_api(&server, &seeded.client_id, api("loop"));
    let admin = hookd_tests::admin_token(&server, dir.path()).await;
    let id = hookd_tests::create_hook(
        &server,
        &admin,
        json!({
            "name": "looping",
            "triggerId": "credentials-exchange",
            "limits": {"fuel": 3_000_000, "timeout_ms": 20_000},
            "failure_policy": "fail-open",
        }),
    )
    .await;
    let uploaded = hookd_tests::upload(&server, &admin, &id, hookd_tests::wasm(HOSTILE)).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let loop_token = || {
        token_form(
            &server,
            Some((&seeded.client_id, &seeded.secret)),
            &[("grant_type", "client_credentials"), ("audience", "loop")],
        )
    };
    let entry_for = |reply: &hookd_tests::Reply| {
        let request_id = reply.headers["x-request-id"].to_str().expect("ascii");
        server
            .hook_log
            .recent(&id)
            .into_iter()
            .find(|entry| entry.request_id == request_id)
            .expect("a hook log entry under the response's request id")
    };

    // Fail-open, set through the API: the looping hook runs out of the fuel the API set, and
    // the token is issued without it.
    let reply = loop_token().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let entry = entry_for(&reply);
    assert!(
        matches!(&entry.outcome, hookd::hooklog::LoggedOutcome::Failed { kind, token_issued: true, .. } if kind == "out_of_fuel"),
        "{:?}",
        entry.outcome
    );
    assert!(
        (2_000_000..=3_000_000).contains(&entry.fuel_used),
        "fuel used {}",
        entry.fuel_used
    );

    // Fail-closed and less fuel, through the API: the same hook now refuses the token, and
    // stops at the new limit.
    let patched = hookd_tests::call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{id}"),
        Some(json!({"failure_policy": "fail-closed", "limits": {"fuel": 1_000_000, "timeout_ms": 20_000}})),
    )
    .await;
    assert_eq!(patched.status, 201, "{}", patched.text);
    let reply = loop_token().await;
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert_eq!(reply.json["error"], "server_error", "{}", reply.text);
    assert!(!reply.text.contains("fuel"), "{}", reply.text);
    let entry = entry_for(&reply);
    assert!(
        matches!(&entry.outcome, hookd::hooklog::LoggedOutcome::Failed { kind, token_issued: false, .. } if kind == "out_of_fuel"),
        "{:?}",
        entry.outcome
    );
    assert!(
        (500_000..=1_000_000).contains(&entry.fuel_used),
        "fuel used {}",
        entry.fuel_used
    );
    server.stop().await;
}
