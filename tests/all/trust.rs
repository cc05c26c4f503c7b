//! What no input, copy or narrow credential gets past: secrets sealed at rest, Management API
//! tokens that end when what they were issued for ends, and management scopes that cannot be
//! widened from inside.

use hookd::secrets::{AtRest, SEALED_SIGNING_KEY};
use hookd_tests::{
    API, SEED, TestServer, admin_token, call, get_token, seed, test_secret_box, token_form,
};
use http::Method;
use serde_json::{Value, json};

const MANAGEMENT: &str = "https://hookd.test/api/v2/";

/// Every file under `dir`, recursively, as bytes.
fn all_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).expect("read")));
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// A client with a grant of `scopes` on the Management API, created by the admin; returns
/// its id and secret.
async fn management_client(server: &TestServer, admin: &str, scopes: &[&str]) -> (String, String) {
    let created = call(
        server,
        admin,
        Method::POST,
        "/api/v2/clients",
        Some(json!({"name": format!("ops-{}", scopes.join("-")), "app_type": "non_interactive"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let client_id = created.json["client_id"].as_str().expect("id").to_owned();
    let secret = created.json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let grant = call(
        server,
        admin,
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": client_id, "audience": MANAGEMENT, "scope": scopes})),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    (client_id, secret)
}

async fn management_token(server: &TestServer, client_id: &str, secret: &str) -> String {
    let reply = token_form(
        server,
        Some((client_id, secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", MANAGEMENT),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// `token` checked as `jwt.verify(token, secret)` does for an HS256 API: signature with the
/// secret's text, audience, expiry.
fn verify_hs256(
    token: &str,
    audience: &str,
    secret: &str,
) -> jsonwebtoken::errors::Result<jsonwebtoken::TokenData<Value>> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
}

fn grant_id(server: &TestServer, client_id: &str) -> String {
    server
        .store
        .grant_for(client_id, MANAGEMENT)
        .expect("store")
        .expect("grant")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_secrets_are_sealed_at_rest_and_a_copied_store_mints_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let created = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/resource-servers",
        Some(json!({"identifier": "https://hs.example/", "signing_alg": "HS256"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let hs256_secret = created.json["signing_secret"]
        .as_str()
        .expect("shown on create")
        .to_owned();
    let keys = server.store.signing_keys().expect("keys");
    server.stop().await;

    // No file of the data directory holds a private key or the HS256 secret in clear.
    let secret_box = test_secret_box();
    let files = all_bytes(dir.path());
    assert!(files.iter().any(|(path, _)| path.ends_with("db")));
    for key in &keys {
        assert!(matches!(key.pkcs8, AtRest::Sealed(_)), "{}", key.kid);
        let pkcs8 = secret_box
            .reveal(SEALED_SIGNING_KEY, &key.kid, &key.pkcs8)
            .expect("opens under the secrets key");
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(&pkcs8)
            .expect("base64");
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, &pkcs8),
                "{} holds {}",
                path.display(),
                key.kid
            );
            assert!(
                !contains(bytes, &der),
                "{} holds {}",
                path.display(),
                key.kid
            );
        }
    }
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, hs256_secret.as_bytes()),
            "{} holds the HS256 secret",
            path.display()
        );
    }

    // The same data under another secrets key does not start (and so signs nothing).
    let mut config =
        hookd::app::ServeConfig::new(dir.path().to_owned(), "127.0.0.1:0".parse().expect("addr"));
    config.issuer = Some("https://hookd.test/".to_owned());
    config.secrets_key = Some("b3RoZXItc2VjcmV0cy1rZXktb2YtMzItYnl0ZXMtISE".to_owned());
    let refused = hookd::app::prepare(config).await.expect_err("wrong key");
    assert!(
        refused.to_string().contains("could not be decrypted"),
        "{refused}"
    );

    // Under its own key it starts, and the HS256 secret shown on create still verifies.
    let server = TestServer::start(dir.path()).await;
    let grant = call(
        &server,
        &admin_token(&server, dir.path()).await,
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({
            "client_id": hookd_tests::admin(dir.path())["client_id"],
            "audience": "https://hs.example/",
            "scope": [],
        })),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    let admin = hookd_tests::admin(dir.path());
    let reply = token_form(
        &server,
        Some((
            admin["client_id"].as_str().expect("id"),
            admin["client_secret"].as_str().expect("secret"),
        )),
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://hs.example/"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let verified = verify_hs256(
        reply.json["access_token"].as_str().expect("token"),
        "https://hs.example/",
        &hs256_secret,
    );
    assert!(verified.is_ok(), "{verified:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_earlier_hookd_stored_in_clear_is_sealed_at_start_and_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let before = get_token(&server, &seeded).await;
    assert_eq!(before.status, 200, "{}", before.text);
    server.stop().await;

    // Put the store back the way hookd wrote it before sealing: private keys, an HS256
    // secret and the client-secret key in clear.
    let secret_box = test_secret_box();
    let legacy_secret = "an-hs256-secret-from-before-sealing";
    {
        let store = hookd::store::SledStore::open(dir.path()).expect("store");
        let clear: Vec<_> = store
            .signing_keys()
            .expect("keys")
            .into_iter()
            .map(|key| {
                let pkcs8 = secret_box
                    .reveal(SEALED_SIGNING_KEY, &key.kid, &key.pkcs8)
                    .expect("opens");
                hookd::model::SigningKey {
                    pkcs8: AtRest::Clear(String::from_utf8(pkcs8).expect("text")),
                    ..key
                }
            })
            .collect();
        store.put_signing_keys(&clear).expect("keys");
        let mut api = store.api_by_identifier(API).expect("store").expect("api");
        api.signing_alg = hookd::model::SigningAlg::HS256;
        api.signing_secret = Some(AtRest::Clear(legacy_secret.to_owned()));
        api.signing_secret_form = hookd::model::SecretKeyForm::Text;
        store.update_api(&api).expect("api");
        let sealed_key = store.secret_hash_key(b"unused").expect("key");
        let sealed: hookd::secrets::Sealed = serde_json::from_slice(&sealed_key).expect("sealed");
        let raw = secret_box
            .open_bytes(hookd::secrets::SEALED_CLIENT_SECRET_KEY, "", &sealed)
            .expect("opens");
        store
            .replace_secret_hash_key(&sealed_key, &raw)
            .expect("clear key");
        store.flush().expect("flush");
    }

    let server = TestServer::start(dir.path()).await;
    // The client's secret (hashed under the old clear key) still works, and the HS256 token
    // verifies with the secret as it was.
    let reply = get_token(&server, &seeded).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let verified = verify_hs256(
        reply.json["access_token"].as_str().expect("token"),
        API,
        legacy_secret,
    );
    assert!(verified.is_ok(), "{verified:?}");
    // An RS256 token from before the restart still verifies against the JWKS.
    let old = before.json["access_token"].as_str().expect("token");
    hookd_tests::verify(&server, old, jsonwebtoken::Algorithm::RS256, API).await;

    // And everything is sealed now.
    for key in server.store.signing_keys().expect("keys") {
        assert!(matches!(key.pkcs8, AtRest::Sealed(_)), "{}", key.kid);
    }
    let api = server
        .store
        .api_by_identifier(API)
        .expect("store")
        .expect("api");
    assert!(matches!(api.signing_secret, Some(AtRest::Sealed(_))));
    let stored_key = server.store.secret_hash_key(b"unused").expect("key");
    assert!(serde_json::from_slice::<hookd::secrets::Sealed>(&stored_key).is_ok());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_tokens_end_when_their_grant_scope_client_or_secret_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let (ops_id, ops_secret) =
        management_client(&server, &admin, &["read:hooks", "read:clients"]).await;
    let ops = management_token(&server, &ops_id, &ops_secret).await;
    let hooks = call(&server, &ops, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(hooks.status, 200, "{}", hooks.text);

    // A scope taken off the grant is gone from the token at once.
    let narrowed = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/client-grants/{}", grant_id(&server, &ops_id)),
        Some(json!({"scope": ["read:clients"]})),
    )
    .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.text);
    let hooks = call(&server, &ops, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(hooks.status, 403, "{}", hooks.text);
    assert_eq!(hooks.json["errorCode"], "insufficient_scope");
    let clients = call(&server, &ops, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(clients.status, 200, "{}", clients.text);

    // A deleted grant ends the token.
    let deleted = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/client-grants/{}", grant_id(&server, &ops_id)),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let clients = call(&server, &ops, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(clients.status, 401, "{}", clients.text);
    assert_eq!(clients.json["message"], "Invalid token");

    // A deleted client ends its tokens.
    let (gone_id, gone_secret) = management_client(&server, &admin, &["read:clients"]).await;
    let gone = management_token(&server, &gone_id, &gone_secret).await;
    assert_eq!(
        call(&server, &gone, Method::GET, "/api/v2/clients", None)
            .await
            .status,
        200
    );
    let deleted = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v2/clients/{gone_id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(
        call(&server, &gone, Method::GET, "/api/v2/clients", None)
            .await
            .status,
        401
    );

    // Rotating the admin's own secret ends the token that did it; a new one works.
    let admin_id = hookd_tests::admin(dir.path())["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let rotated = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/v2/clients/{admin_id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let after = call(&server, &admin, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(after.status, 401, "{}", after.text);
    let new_secret = rotated.json["client_secret"].as_str().expect("secret");
    let fresh = management_token(&server, &admin_id, new_secret).await;
    assert_eq!(
        call(&server, &fresh, Method::GET, "/api/v2/clients", None)
            .await
            .status,
        200
    );

    // The Management API's tokens live an hour.
    let lifetime = server
        .store
        .api_by_identifier(MANAGEMENT)
        .expect("store")
        .expect("api")
        .token_lifetime;
    assert_eq!(lifetime, 3600);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_log_ends_when_the_followers_secret_is_rotated() {
    use http_body_util::BodyExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    seed(dir.path(), Some(SEED));
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let (ops_id, ops_secret) = management_client(&server, &admin, &["read:logs"]).await;
    let ops = management_token(&server, &ops_id, &ops_secret).await;
    let id = server.store.hooks().expect("hooks")[0].id.clone();

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::get(format!("{}/api/v2/hooks/{id}/logs?follow", server.base))
        .header("authorization", format!("Bearer {ops}"))
        .body(http_body_util::Full::default())
        .expect("request");
    let response = client.request(request).await.expect("follow");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // Still open a while later: nothing ends it yet.
    let waited = tokio::time::timeout(std::time::Duration::from_millis(1500), body.frame()).await;
    assert!(waited.is_err(), "the stream ended early: {waited:?}");

    let rotated = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/v2/clients/{ops_id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    // The stream ends (its body finishes) within a few re-check periods.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(frame) = body.frame().await {
            frame.expect("frame");
        }
    })
    .await;
    assert!(ended.is_ok(), "the follow stream outlived the rotation");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_management_scopes_cannot_be_widened_or_reach_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let admin_id = hookd_tests::admin(dir.path())["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let narrow_scopes = [
        "read:client_grants",
        "create:client_grants",
        "update:client_grants",
        "delete:client_grants",
        "read:resource_servers",
        "update:resource_servers",
        "update:clients",
        "delete:clients",
    ];
    let (narrow_id, narrow_secret) = management_client(&server, &admin, &narrow_scopes).await;
    let narrow = management_token(&server, &narrow_id, &narrow_secret).await;
    let refused = |reply: &hookd_tests::Reply| {
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.json["errorCode"], "insufficient_scope");
    };

    // Its own grant cannot gain a scope, nor can a new grant on the Management API be made.
    let own_grant = grant_id(&server, &narrow_id);
    let widened = call(
        &server,
        &narrow,
        Method::PATCH,
        &format!("/api/v2/client-grants/{own_grant}"),
        Some(json!({"scope": ["create:clients", "update:clients"]})),
    )
    .await;
    refused(&widened);
    let (other_id, _) = {
        let created = call(
            &server,
            &admin,
            Method::POST,
            "/api/v2/clients",
            Some(json!({"name": "plain"})),
        )
        .await;
        (
            created.json["client_id"].as_str().expect("id").to_owned(),
            (),
        )
    };
    let granted = call(
        &server,
        &narrow,
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": other_id, "audience": MANAGEMENT, "scope": ["create:clients"]})),
    )
    .await;
    refused(&granted);
    let grants = server.store.grants().expect("grants");
    assert_eq!(
        grants
            .iter()
            .find(|grant| grant.client_id == narrow_id)
            .expect("own grant")
            .scope
            .len(),
        narrow_scopes.len(),
        "nothing changed"
    );
    assert!(!grants.iter().any(|grant| grant.client_id == other_id));
    // Nor can it take the admin's grant away, or the admin's secret, or the admin.
    let admin_grant = grant_id(&server, &admin_id);
    refused(
        &call(
            &server,
            &narrow,
            Method::DELETE,
            &format!("/api/v2/client-grants/{admin_grant}"),
            None,
        )
        .await,
    );
    refused(
        &call(
            &server,
            &narrow,
            Method::POST,
            &format!("/api/v2/clients/{admin_id}/rotate-secret"),
            None,
        )
        .await,
    );
    refused(
        &call(
            &server,
            &narrow,
            Method::DELETE,
            &format!("/api/v2/clients/{admin_id}"),
            None,
        )
        .await,
    );
    assert_eq!(
        call(&server, &admin, Method::GET, "/api/v2/clients", None)
            .await
            .status,
        200
    );
    // Plain clients stay within reach of its scopes.
    let renamed = call(
        &server,
        &narrow,
        Method::PATCH,
        &format!("/api/v2/clients/{other_id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);

    // The Management API itself is out of its reach, and HS256 is refused for it outright.
    let management_id = server
        .store
        .api_by_identifier(MANAGEMENT)
        .expect("store")
        .expect("api")
        .id;
    let to_hs256 = json!({"signing_alg": "HS256"});
    refused(
        &call(
            &server,
            &narrow,
            Method::PATCH,
            &format!("/api/v2/resource-servers/{management_id}"),
            Some(to_hs256.clone()),
        )
        .await,
    );
    let by_admin = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/resource-servers/{management_id}"),
        Some(to_hs256),
    )
    .await;
    assert_eq!(by_admin.status, 400, "{}", by_admin.text);
    assert_eq!(by_admin.json["errorCode"], "operation_not_supported");
    assert_eq!(
        call(&server, &admin, Method::GET, "/api/v2/clients", None)
            .await
            .status,
        200
    );

    // An HS256 secret is shown on create and on an explicit rotate, never when read.
    let created = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/resource-servers",
        Some(json!({"identifier": "https://hs.example/", "signing_alg": "HS256"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let first_secret = created.json["signing_secret"]
        .as_str()
        .expect("shown")
        .to_owned();
    let api_id = created.json["id"].as_str().expect("id").to_owned();
    let read = call(
        &server,
        &narrow,
        Method::GET,
        &format!("/api/v2/resource-servers/{api_id}"),
        None,
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(read.json.get("signing_secret").is_none(), "{}", read.text);
    let listed = call(
        &server,
        &narrow,
        Method::GET,
        "/api/v2/resource-servers",
        None,
    )
    .await;
    assert!(!listed.text.contains(&first_secret), "{}", listed.text);
    let renamed = call(
        &server,
        &narrow,
        Method::PATCH,
        &format!("/api/v2/resource-servers/{api_id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert!(
        renamed.json.get("signing_secret").is_none(),
        "{}",
        renamed.text
    );

    let rotated = call(
        &server,
        &narrow,
        Method::POST,
        &format!("/api/v2/resource-servers/{api_id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let second_secret = rotated.json["signing_secret"].as_str().expect("shown");
    assert_ne!(second_secret, first_secret);
    let grant = call(
        &server,
        &admin,
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": other_id, "audience": "https://hs.example/", "scope": []})),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    let other_secret = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/v2/clients/{other_id}/rotate-secret"),
        None,
    )
    .await
    .json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let token = token_form(
        &server,
        Some((&other_id, &other_secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://hs.example/"),
        ],
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.text);
    let token = token.json["access_token"].as_str().expect("token");
    let with = |secret: &str| verify_hs256(token, "https://hs.example/", secret);
    assert!(with(second_secret).is_ok());
    assert!(with(&first_secret).is_err());
    // An RS256 API has no secret to rotate.
    let no_secret = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/v2/resource-servers/{management_id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(no_secret.status, 400, "{}", no_secret.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_across_two_and_three_rotations_within_their_lifetime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    async fn token(server: &TestServer, seeded: &hookd_tests::Seeded) -> String {
        let reply = get_token(server, seeded).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
    let mut issued = vec![token(&server, &seeded).await];
    for rotation in 1..=3 {
        let rotated = call(
            &server,
            &admin,
            Method::POST,
            "/api/v2/keys/signing/rotate",
            None,
        )
        .await;
        assert_eq!(rotated.status, 201, "{}", rotated.text);
        issued.push(token(&server, &seeded).await);
        // Every token issued so far, each signed by a key of its own, verifies by the JWKS.
        for (n, token) in issued.iter().enumerate() {
            let kid = hookd_tests::header(token)["kid"]
                .as_str()
                .expect("kid")
                .to_owned();
            let set = hookd_tests::jwks(&server).await;
            assert!(
                set.find(&kid).is_some(),
                "after {rotation} rotations the key of token {n} is unpublished"
            );
            hookd_tests::verify(&server, token, jsonwebtoken::Algorithm::RS256, API).await;
        }
    }
    let kids: std::collections::BTreeSet<String> = issued
        .iter()
        .map(|token| {
            hookd_tests::header(token)["kid"]
                .as_str()
                .expect("kid")
                .to_owned()
        })
        .collect();
    assert_eq!(kids.len(), 4, "each rotation signs with a new key");
    // The management token from before the rotations still works too.
    assert_eq!(
        call(&server, &admin, Method::GET, "/api/v2/hooks", None)
            .await
            .status,
        200
    );
    server.stop().await;
}

/// Opens `count` connections that each send a token request's headers and one byte of its
/// 100-byte body, then stall.
async fn trickling_connections(base: &str, count: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt as _;
    let addr = base.strip_prefix("http://").expect("http base");
    let mut streams = Vec::new();
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(
                b"POST /oauth/token HTTP/1.1\r\nHost: hookd.test\r\n\
                  Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ng",
            )
            .await
            .expect("write");
        streams.push(stream);
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_hold_connections_never_the_slots_tokens_and_operators_need() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let limits = hookd::http::HttpLimits {
        max_in_flight: 4,
        reserved_in_flight: 4,
        body_timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let server = TestServer::start_with(dir.path(), limits).await;
    // Four times as many stalled bodies as there are slots of either kind.
    let stalled = trickling_connections(&server.base, 16).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let token = get_token(&server, &seeded).await;
    assert_eq!(token.status, 200, "{}", token.text);
    let jwks = hookd_tests::send(
        Method::GET,
        &format!("{}/.well-known/jwks.json", server.base),
        &[],
        "",
    )
    .await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    let health = hookd_tests::send(Method::GET, &format!("{}/healthz", server.base), &[], "").await;
    assert_eq!(health.status, 200, "{}", health.text);
    let admin = admin_token(&server, dir.path()).await;
    let hooks = call(&server, &admin, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(hooks.status, 200, "{}", hooks.text);
    drop(stalled);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_until_one_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = hookd::http::HttpLimits {
        max_connections: 4,
        header_timeout: std::time::Duration::from_secs(60),
        body_timeout: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let server = TestServer::start_with(dir.path(), limits).await;
    let mut stalled = trickling_connections(&server.base, 4).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let url = format!("{}/healthz", server.base);
    let mut waiting =
        tokio::spawn(async move { hookd_tests::send(Method::GET, &url, &[], "").await });
    let early = tokio::time::timeout(std::time::Duration::from_millis(1500), &mut waiting).await;
    assert!(early.is_err(), "a fifth connection was served: {early:?}");
    // One stalled client goes away: its slot serves the waiting request.
    drop(stalled.pop());
    let served = tokio::time::timeout(std::time::Duration::from_secs(20), waiting)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert_eq!(served.status, 200, "{}", served.text);
    drop(stalled);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_keeps_trickling_is_cut_off_by_its_total_time() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = hookd::http::HttpLimits {
        body_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let server = TestServer::start_with(dir.path(), limits).await;
    let mut stream = trickling_connections(&server.base, 1).await.remove(0);
    // A byte every 200 ms never lets the connection go idle, but the body's 1 s is over
    // after about five of them; 40 bytes would take 8 s.
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if stream.write_all(b"g").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), trickle).await;
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("not received in time"), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_405s_name_the_allowed_methods_and_discovery_lists_only_what_is_supported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    for (method, path, allow) in [
        (Method::PUT, "/api/v2/clients", "GET, POST"),
        (Method::POST, "/api/v2/clients/abc", "GET, PATCH, DELETE"),
        (Method::GET, "/api/v2/clients/abc/rotate-secret", "POST"),
        (Method::GET, "/api/v2/client-grants/abc", "PATCH, DELETE"),
        (Method::DELETE, "/api/v2/keys/signing", "GET"),
        (Method::GET, "/api/v2/hooks/abc/module", "PUT"),
        (
            Method::PUT,
            "/api/v2/hooks/abc/secrets",
            "GET, POST, PATCH, DELETE",
        ),
        (
            Method::GET,
            "/api/v2/resource-servers/abc/rotate-secret",
            "POST",
        ),
    ] {
        let reply =
            hookd_tests::send(method.clone(), &format!("{}{path}", server.base), &[], "").await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.text);
        assert_eq!(reply.json["statusCode"], 405, "{method} {path}");
        assert_eq!(
            reply
                .headers
                .get("allow")
                .map(|v| v.to_str().expect("ascii")),
            Some(allow),
            "{method} {path}"
        );
    }
    let missing = hookd_tests::send(
        Method::GET,
        &format!("{}/api/v2/nothing", server.base),
        &[],
        "",
    )
    .await;
    assert_eq!(missing.status, 404);

    let metadata = hookd_tests::send(
        Method::GET,
        &format!("{}/.well-known/oauth-authorization-server", server.base),
        &[],
        "",
    )
    .await;
    assert_eq!(metadata.status, 200);
    // hookd issues no ID tokens and takes no signed client assertions: nothing to advertise.
    assert!(
        metadata
            .json
            .get("id_token_signing_alg_values_supported")
            .is_none(),
        "{}",
        metadata.text
    );
    assert!(
        metadata
            .json
            .get("token_endpoint_auth_signing_alg_values_supported")
            .is_none(),
        "{}",
        metadata.text
    );
    assert_eq!(
        metadata.json["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_secret_that_will_not_open_is_a_500_that_names_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    seed(dir.path(), Some(SEED));
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    // A hook secret sealed under some other key lands in the store (a restored backup, say).
    let mut hook = server.store.hooks().expect("hooks").remove(0);
    let foreign = hookd::secrets::SecretBox::new(&[9; 32]).seal(&hook.id, "API_KEY", "value");
    hook.secrets.insert("API_KEY".to_owned(), foreign);
    server.store.update_hook(&hook).expect("update");
    let renamed = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{}", hook.id),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(renamed.status, 500, "{}", renamed.text);
    assert_eq!(
        renamed.json,
        json!({"statusCode": 500, "error": "Internal Server Error", "message": "Internal error"})
    );
    server.stop().await;
}

/// The Management API's clients and APIs as a fresh handle on the stopped server's store
/// sees them: (API identifiers, client ids).
fn stored_admin_parts(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let store = hookd::store::SledStore::open(dir).expect("store");
    let apis = store.apis().expect("apis");
    let clients = store.clients().expect("clients");
    (
        apis.into_iter().map(|api| api.identifier).collect(),
        clients.into_iter().map(|client| client.client_id).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_first_start_leaves_nothing_and_the_next_start_makes_the_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = TestServer::config(dir.path());
    config.admin_credentials = Some(("ops-admin".to_owned(), "too-short".to_owned()));
    let error = TestServer::try_start(config)
        .await
        .expect_err("a 9-character admin secret is refused");
    let message = error.to_string();
    assert!(
        message.contains("HOOKD_ADMIN_CLIENT_SECRET") && message.contains("16 characters"),
        "{message}"
    );
    assert!(!message.contains("too-short"), "{message}");
    // Nothing half made: no Management API without an admin.
    assert_eq!(stored_admin_parts(dir.path()), (vec![], vec![]));

    let secret = "ops-admin-secret-of-decent-length";
    let mut config = TestServer::config(dir.path());
    config.admin_credentials = Some(("ops-admin".to_owned(), secret.to_owned()));
    let server = TestServer::try_start(config).await.expect("starts");
    let reply = token_form(
        &server,
        Some(("ops-admin", secret)),
        &[
            ("grant_type", "client_credentials"),
            ("audience", MANAGEMENT),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let admin = hookd_tests::admin(dir.path());
    assert_eq!(admin["client_id"], "ops-admin");
    assert!(admin.get("client_secret").is_none(), "{admin}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_management_api_left_without_an_admin_gets_one_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let first = hookd_tests::admin(dir.path());
    // What a failed bootstrap of an earlier hookd left: the Management API, no admin.
    let admin_id = first["client_id"].as_str().expect("id");
    server.store.delete_client(admin_id).expect("delete");
    server.stop().await;

    let server = TestServer::start(dir.path()).await;
    let second = hookd_tests::admin(dir.path());
    assert_ne!(second["client_id"], first["client_id"]);
    let token = admin_token(&server, dir.path()).await;
    let hooks = call(&server, &token, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(hooks.status, 200, "{}", hooks.text);
    let apis = server.store.apis().expect("apis");
    assert_eq!(
        apis.iter()
            .filter(|api| api.identifier == MANAGEMENT)
            .count(),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_that_adds_a_management_scope_gives_it_to_the_admin_instead_of_making_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).await;
    let first = hookd_tests::admin(dir.path());
    let admin_id = first["client_id"].as_str().expect("id").to_owned();
    // What an earlier hookd, which did not have `read:nodes`, left.
    let mut api = server
        .store
        .api_by_identifier(MANAGEMENT)
        .expect("read")
        .expect("the Management API");
    api.scopes.retain(|scope| scope.value != "read:nodes");
    server.store.update_api(&api).expect("update api");
    let mut grant = server
        .store
        .grant_for(&admin_id, MANAGEMENT)
        .expect("read")
        .expect("the admin's grant");
    grant.scope.retain(|scope| scope != "read:nodes");
    server.store.update_grant(&grant).expect("update grant");
    let token = admin_token(&server, dir.path()).await;
    let refused = call(&server, &token, Method::GET, "/api/v2/nodes", None).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    server.stop().await;

    let server = TestServer::start(dir.path()).await;
    assert_eq!(
        hookd_tests::admin(dir.path())["client_id"],
        first["client_id"]
    );
    let token = admin_token(&server, dir.path()).await;
    let nodes = call(&server, &token, Method::GET, "/api/v2/nodes", None).await;
    assert_eq!(nodes.status, 200, "{}", nodes.text);
    // On sled the list is this node alone, with no change feed.
    assert_eq!(nodes.json["revision"], Value::Null);
    assert_eq!(nodes.json["nodes"].as_array().expect("nodes").len(), 1);
    assert_eq!(nodes.json["nodes"][0]["live"], true);
    let grants: Vec<_> = server
        .store
        .grants()
        .expect("grants")
        .into_iter()
        .filter(|grant| grant.audience == MANAGEMENT)
        .collect();
    assert_eq!(grants.len(), 1, "no second admin: {grants:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_changes_only_when_asked_and_then_everything_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let admin_before = hookd_tests::admin(dir.path());
    server.stop().await;

    // Another issuer without asking: refused, nothing changed.
    let moved = "https://auth.example.test";
    let mut config = TestServer::config(dir.path());
    config.issuer = Some(moved.to_owned());
    let error = TestServer::try_start(config)
        .await
        .expect_err("a different issuer is refused");
    let message = error.to_string();
    assert!(
        message.contains("https://hookd.test/") && message.contains("--change-issuer"),
        "{message}"
    );
    let (apis, _) = stored_admin_parts(dir.path());
    assert!(apis.contains(&MANAGEMENT.to_owned()), "{apis:?}");
    assert_eq!(hookd_tests::admin(dir.path()), admin_before);

    // No issuer given: the stored one is served.
    let mut config = TestServer::config(dir.path());
    config.issuer = None;
    let server = TestServer::try_start(config).await.expect("starts");
    assert_eq!(server.tenant.issuer, "https://hookd.test/");
    server.stop().await;

    // Asked: the tenant, the Management API, its grants and admin.json move together.
    let mut config = TestServer::config(dir.path());
    config.issuer = Some(moved.to_owned());
    config.change_issuer = true;
    let server = TestServer::try_start(config).await.expect("starts");
    assert_eq!(server.tenant.issuer, "https://auth.example.test/");
    let admin_after = hookd_tests::admin(dir.path());
    assert_eq!(admin_after["client_id"], admin_before["client_id"]);
    assert_eq!(admin_after["client_secret"], admin_before["client_secret"]);
    assert_eq!(admin_after["audience"], "https://auth.example.test/api/v2/");
    assert_eq!(
        admin_after["token_endpoint"],
        "https://auth.example.test/oauth/token"
    );
    let token = admin_token(&server, dir.path()).await;
    let hooks = call(&server, &token, Method::GET, "/api/v2/hooks", None).await;
    assert_eq!(hooks.status, 200, "{}", hooks.text);
    let old_audience = token_form(
        &server,
        Some((
            admin_after["client_id"].as_str().expect("id"),
            admin_after["client_secret"].as_str().expect("secret"),
        )),
        &[
            ("grant_type", "client_credentials"),
            ("audience", MANAGEMENT),
        ],
    )
    .await;
    assert_eq!(old_audience.status, 403, "{}", old_audience.text);
    let identifiers: Vec<String> = server
        .store
        .apis()
        .expect("apis")
        .into_iter()
        .map(|api| api.identifier)
        .collect();
    assert_eq!(
        identifiers
            .iter()
            .filter(|identifier| identifier.ends_with("/api/v2/"))
            .collect::<Vec<_>>(),
        vec!["https://auth.example.test/api/v2/"]
    );
    // The seeded API (not the tenant's own) is untouched, and still issues tokens.
    assert!(identifiers.contains(&API.to_owned()));
    let token = get_token(&server, &seeded).await;
    assert_eq!(token.status, 200, "{}", token.text);
    let claims = hookd_tests::decode_unverified(token.json["access_token"].as_str().expect("t"));
    assert_eq!(claims["iss"], "https://auth.example.test/");
    server.stop().await;
}

/// `hook`'s last hook log entry, through the Management API.
async fn last_log_entry(server: &TestServer, admin: &str, hook_id: &str) -> Value {
    let logs = call(
        server,
        admin,
        Method::GET,
        &format!("/api/v2/hooks/{hook_id}/logs"),
        None,
    )
    .await;
    assert_eq!(logs.status, 200, "{}", logs.text);
    logs.json
        .as_array()
        .and_then(|entries| entries.last())
        .cloned()
        .expect("a log entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enabled_hook_that_cannot_load_at_start_follows_its_failure_policy_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(SEED));
    let server = TestServer::start(dir.path()).await;
    // A hook secret sealed under another key (a backup restored with the wrong key, say).
    let mut hook = server.store.hooks().expect("hooks").remove(0);
    let foreign = hookd::secrets::SecretBox::new(&[9; 32]).seal(&hook.id, "API_KEY", "value");
    hook.secrets.insert("API_KEY".to_owned(), foreign);
    server.store.update_hook(&hook).expect("update");
    server.stop().await;

    // The server starts anyway; the hook fails closed (its policy) and says why.
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let shown = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v2/hooks/{}", hook.id),
        None,
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["enabled"], true);
    assert_eq!(shown.json["state"], "unavailable", "{}", shown.text);
    let reason = shown.json["state_reason"].as_str().expect("a reason");
    assert!(reason.contains("API_KEY"), "{reason}");
    assert!(!reason.contains("value"), "{reason}");
    let refused = get_token(&server, &seeded).await;
    assert_eq!(refused.status, 500, "{}", refused.text);
    assert_eq!(refused.json["error"], "server_error", "{}", refused.text);
    let entry = last_log_entry(&server, &admin, &hook.id).await;
    assert_eq!(entry["outcome"]["kind"], "unavailable", "{entry}");
    assert_eq!(entry["outcome"]["token_issued"], false, "{entry}");
    assert_eq!(
        entry["request_id"],
        refused.headers["x-request-id"].to_str().expect("ascii")
    );
    server.stop().await;

    // Fail open: the token is issued without the hook's changes.
    {
        let store = hookd::store::SledStore::open(dir.path()).expect("store");
        let mut hook = store.hook(&hook.id).expect("read").expect("hook");
        hook.failure_policy = hookd::model::FailurePolicy::FailOpen;
        store.update_hook(&hook).expect("update");
    }
    let server = TestServer::start(dir.path()).await;
    let admin = admin_token(&server, dir.path()).await;
    let issued = get_token(&server, &seeded).await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    let claims = hookd_tests::decode_unverified(issued.json["access_token"].as_str().expect("t"));
    assert!(claims.get("https://foo.com/claim").is_none(), "{claims}");
    let entry = last_log_entry(&server, &admin, &hook.id).await;
    assert_eq!(entry["outcome"]["token_issued"], true, "{entry}");

    // Disabling it is a normal write; the trigger then runs nothing.
    let disabled = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{}", hook.id),
        Some(json!({"enabled": false})),
    )
    .await;
    // Auth0 answers a hook PATCH with 201.
    assert_eq!(disabled.status, 201, "{}", disabled.text);
    assert_eq!(disabled.json["state"], "disabled");
    let issued = get_token(&server, &seeded).await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    server.stop().await;
}

#[tokio::test]
async fn an_unsupported_grant_type_is_quoted_only_when_short_and_printable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = TestServer::start(dir.path()).await;
    let basic = Some((seeded.client_id.as_str(), seeded.secret.as_str()));
    let description = |reply: &hookd_tests::Reply| {
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(
            reply.json["error"], "unsupported_grant_type",
            "{}",
            reply.text
        );
        reply.json["error_description"]
            .as_str()
            .expect("a description")
            .to_owned()
    };

    let short = token_form(
        &server,
        basic,
        &[("grant_type", "password"), ("audience", API)],
    )
    .await;
    assert_eq!(description(&short), "Unsupported grant type: password");

    // A 40 KB value, and one with a quote and a control character: RFC 6749 §5.2 allows
    // neither in error_description, and nobody needs their input echoed back at that length.
    let long = "g".repeat(40_000);
    for sent in [long.as_str(), "pass\"word\u{7}"] {
        let reply = token_form(&server, basic, &[("grant_type", sent), ("audience", API)]).await;
        let text = description(&reply);
        assert!(
            text.len() <= 200,
            "{} bytes: {}",
            text.len(),
            &text[..200.min(text.len())]
        );
        assert!(
            text.bytes().all(|b| b == 0x20
                || b == 0x21
                || (0x23..=0x5B).contains(&b)
                || (0x5D..=0x7E).contains(&b)),
            "{text:?}"
        );
    }
    server.stop().await;
}
