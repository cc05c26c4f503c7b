//! PostgreSQL, the store several nodes share: the schema is made once however many nodes
//! start together, holds the rules the Management API answers 409 for as constraints, and a
//! node refuses a schema newer than it knows. Each test starts a PostgreSQL of its own.

use hookd::store::postgres::{Migrated, PostgresError, SCHEMA_VERSION, migrate};
use hookd_tests::postgres::TestPostgres;

/// A client of `url`, driven on this runtime.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_starting_together_make_the_schema_once() {
    let postgres = TestPostgres::start();
    let url = postgres.create_database("hookd").await;
    let (a, b, c) = tokio::join!(migrate(&url), migrate(&url), migrate(&url));
    let mut outcomes: Vec<Migrated> = [a, b, c]
        .into_iter()
        .map(|result| result.unwrap_or_else(|e| panic!("{e}\n{}", postgres.log())))
        .collect();
    outcomes.sort_by_key(|migrated| migrated.from);
    assert_eq!(
        outcomes,
        vec![
            Migrated {
                from: 0,
                to: SCHEMA_VERSION
            },
            Migrated {
                from: SCHEMA_VERSION,
                to: SCHEMA_VERSION
            },
            Migrated {
                from: SCHEMA_VERSION,
                to: SCHEMA_VERSION
            },
        ],
        "one node migrates, the others find the schema made"
    );
    let client = connect(&url).await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM hookd_schema", &[])
        .await
        .expect("schema rows")
        .get(0);
    assert_eq!(applied, i64::from(SCHEMA_VERSION));
    let revision: i64 = client
        .query_one("SELECT value FROM revision", &[])
        .await
        .expect("revision")
        .get(0);
    assert_eq!(revision, 0, "the change feed starts at revision 0");
    // A restart later finds nothing to do.
    assert_eq!(
        migrate(&url).await.expect("again"),
        Migrated {
            from: SCHEMA_VERSION,
            to: SCHEMA_VERSION
        }
    );
}

#[tokio::test]
async fn the_schema_refuses_what_the_management_api_answers_409_for() {
    let postgres = TestPostgres::start();
    let url = postgres.create_database("hookd").await;
    migrate(&url).await.expect("migrate");
    let client = connect(&url).await;
    let refused = |result: Result<u64, tokio_postgres::Error>, code: &str, what: &str| {
        let error = result.expect_err(what);
        let db = error.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), code, "{what}: {}", db.message());
    };
    const UNIQUE: &str = "23505";
    const FOREIGN_KEY: &str = "23503";
    const CHECK: &str = "23514";

    client
        .batch_execute(
            "INSERT INTO clients VALUES ('c1', '{}'), ('c2', '{}');
             INSERT INTO apis VALUES ('a1', 'https://api.example/', '{}');
             INSERT INTO grants VALUES ('g1', 'c1', 'https://api.example/', '{}');
             INSERT INTO hooks VALUES ('h1', 'first', 'credentials-exchange', true, NULL, '{}');",
        )
        .await
        .expect("valid records");

    let insert = |sql: &'static str| client.execute(sql, &[]);
    refused(
        insert("INSERT INTO clients VALUES ('c1', '{}')").await,
        UNIQUE,
        "a client id twice",
    );
    refused(
        insert("INSERT INTO apis VALUES ('a2', 'https://api.example/', '{}')").await,
        UNIQUE,
        "an API identifier twice",
    );
    refused(
        insert("INSERT INTO grants VALUES ('g2', 'c1', 'https://api.example/', '{}')").await,
        UNIQUE,
        "a second grant for one client and API",
    );
    refused(
        insert("INSERT INTO grants VALUES ('g3', 'nobody', 'https://api.example/', '{}')").await,
        FOREIGN_KEY,
        "a grant for a client that does not exist",
    );
    refused(
        insert(
            "INSERT INTO hooks VALUES ('h2', 'first', 'credentials-exchange', false, NULL, '{}')",
        )
        .await,
        UNIQUE,
        "a hook name twice",
    );
    refused(
        insert(
            "INSERT INTO hooks VALUES ('h3', 'second', 'credentials-exchange', true, NULL, '{}')",
        )
        .await,
        UNIQUE,
        "a second enabled hook for one trigger",
    );
    refused(
        insert("INSERT INTO modules VALUES ('not-a-sha256', '')").await,
        CHECK,
        "a module whose key is not a sha256",
    );
    // A disabled second hook is fine, and deleting a client takes its grants with it.
    insert("INSERT INTO hooks VALUES ('h4', 'second', 'credentials-exchange', false, NULL, '{}')")
        .await
        .expect("a disabled hook beside the enabled one");
    insert("DELETE FROM clients WHERE client_id = 'c1'")
        .await
        .expect("delete client");
    let grants: i64 = client
        .query_one("SELECT count(*) FROM grants", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(grants, 0, "a client's grants go with it");
}

#[tokio::test]
async fn a_node_refuses_a_schema_newer_than_it_knows() {
    let postgres = TestPostgres::start();
    let url = postgres.create_database("hookd").await;
    migrate(&url).await.expect("migrate");
    let newer = SCHEMA_VERSION + 1;
    connect(&url)
        .await
        .execute("INSERT INTO hookd_schema (version) VALUES ($1)", &[&newer])
        .await
        .expect("a newer hookd's mark");
    let error = migrate(&url).await.expect_err("a newer schema is refused");
    assert!(
        matches!(error, PostgresError::NewerSchema { found, known }
            if found == newer && known == SCHEMA_VERSION),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("newer than this hookd knows"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_without_the_password() {
    // A port nothing listens on (taken and let go).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port();
    let error = migrate(&format!(
        "postgres://hookd:s3cret-password@127.0.0.1:{port}/hookd?connect_timeout=2"
    ))
    .await
    .expect_err("nothing listens");
    assert!(matches!(error, PostgresError::Connect(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with("could not connect to PostgreSQL"),
        "{text}"
    );
    assert!(!text.contains("s3cret-password"), "{text}");
}

/// A PostgreSQL of the test's own with an empty database `hookd`, a directory for the nodes'
/// data, and the secrets key every node shares.
struct Shared {
    postgres: TestPostgres,
    url: String,
    dir: tempfile::TempDir,
    key_file: std::path::PathBuf,
}

impl Shared {
    async fn start() -> Self {
        let postgres = TestPostgres::start();
        let url = postgres.create_database("hookd").await;
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("secrets.key");
        std::fs::write(&key_file, hookd_tests::TEST_SECRETS_KEY).expect("key file");
        Shared {
            postgres,
            url,
            dir,
            key_file,
        }
    }
}

/// A Management API token of the admin every node is started with, from `base`.
async fn admin_token(base: &str) -> String {
    let issued = hookd_tests::token_at(
        base,
        "pg-admin",
        "pg-admin-secret-0123456789",
        "https://pg.test/api/v2/",
    )
    .await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    issued.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// `hookd serve` on the database at `url`, its data directory `data`, with the secrets key
/// in `key_file` and the admin's credentials given.
fn node(
    url: &str,
    data: &std::path::Path,
    key_file: &std::path::Path,
) -> hookd_tests::ServeProcess {
    node_with(url, data, key_file, &[])
}

/// [`node`] with more arguments.
fn node_with(
    url: &str,
    data: &std::path::Path,
    key_file: &std::path::Path,
    more: &[&str],
) -> hookd_tests::ServeProcess {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--database".as_ref(),
        url.as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--secrets-key-file".as_ref(),
        key_file.as_os_str(),
        "--issuer".as_ref(),
        "https://pg.test/".as_ref(),
    ];
    args.extend(more.iter().map(std::ffi::OsStr::new));
    hookd_tests::ServeProcess::start(
        &args,
        &[
            ("HOOKD_ADMIN_CLIENT_ID", "pg-admin"),
            ("HOOKD_ADMIN_CLIENT_SECRET", "pg-admin-secret-0123456789"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_postgres_keeps_everything_there_and_refuses_a_missing_or_wrong_key() {
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);

    // Without the shared secrets key, a node refuses to start, saying why.
    let refused = std::process::Command::new(hookd_tests::hookd_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            url,
            "--data-dir",
        ])
        .arg(dir.path().join("keyless"))
        .env_remove("HOOKD_SECRETS_KEY")
        .output()
        .expect("run hookd");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("every node must hold the same secrets key"),
        "{said}"
    );

    let mut first = node(url, &dir.path().join("a"), key_file);
    let admin = admin_token(&first.base).await;
    let call = |method, path: &'static str, body| {
        let (base, admin) = (first.base.clone(), admin.clone());
        async move { hookd_tests::call_at(&base, &admin, method, path, Some(body)).await }
    };
    let api = call(
        http::Method::POST,
        "/api/v2/resource-servers",
        serde_json::json!({"identifier": "https://api.pg.test/", "name": "pg", "scopes": [{"value": "read"}]}),
    )
    .await;
    assert_eq!(api.status, 201, "{}", api.text);
    let client = call(
        http::Method::POST,
        "/api/v2/clients",
        serde_json::json!({"name": "worker", "app_type": "non_interactive"}),
    )
    .await;
    assert_eq!(client.status, 201, "{}", client.text);
    let (id, secret) = (
        client.json["client_id"].as_str().expect("id").to_owned(),
        client.json["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    let grant = call(
        http::Method::POST,
        "/api/v2/client-grants",
        serde_json::json!({"client_id": id, "audience": "https://api.pg.test/", "scope": ["read"]}),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    let issued = hookd_tests::token_at(&first.base, &id, &secret, "https://api.pg.test/").await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    assert_eq!(issued.json["scope"], "read");

    // The records are in PostgreSQL, not in the node's data directory.
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let stored: i64 = db
        .query_one("SELECT count(*) FROM clients WHERE client_id = $1", &[&id])
        .await
        .expect("query")
        .get(0);
    assert_eq!(stored, 1);
    assert!(
        !dir.path().join("a").join("db").exists(),
        "no sled store in the data directory"
    );

    // Another node, with an empty data directory of its own, serves the same client; the
    // first one is gone.
    first.kill();
    let second = node(url, &dir.path().join("b"), key_file);
    let again = hookd_tests::token_at(&second.base, &id, &secret, "https://api.pg.test/").await;
    assert_eq!(again.status, 200, "{}", again.text);
    drop(second);

    // A node with another key refuses the database, naming the key.
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "b3RoZXItc2VjcmV0cy1rZXktb2YtMzItYnl0ZXMtISE").expect("key");
    let wrong = std::process::Command::new(hookd_tests::hookd_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            url,
            "--data-dir",
        ])
        .arg(dir.path().join("c"))
        .arg("--secrets-key-file")
        .arg(&other_key)
        .env_remove("HOOKD_SECRETS_KEY")
        .output()
        .expect("run hookd");
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("wrong secrets key"), "{said}");
    assert!(
        !said.contains(url.as_str()),
        "the URL stays out of messages: {said}"
    );
}

/// Waits (up to 20 s) until `done` returns a value.
async fn eventually<T, F, Fut>(what: &str, done: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if let Some(value) = done().await {
                return value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 20 s"))
}

/// The `kid`s a node's JWKS publishes, sorted (the order of a JWKS means nothing, and a
/// node that rotated lists its keys in the order it made them until it reloads them).
async fn kids(base: &str) -> Vec<String> {
    let jwks = hookd_tests::send(
        http::Method::GET,
        &format!("{base}/.well-known/jwks.json"),
        &[],
        "",
    )
    .await;
    jwks.json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_and_key_rotations_made_on_one_node_reach_the_other_even_when_it_missed_the_notification()
 {
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);
    let a = node(url, &dir.path().join("a"), key_file);
    let b = node(url, &dir.path().join("b"), key_file);
    let admin = admin_token(&a.base).await;
    let on_a = |method, path: String, body| {
        let (base, admin) = (a.base.clone(), admin.clone());
        async move { hookd_tests::call_at(&base, &admin, method, &path, body).await }
    };
    let api = on_a(
        http::Method::POST,
        "/api/v2/resource-servers".to_owned(),
        Some(serde_json::json!({"identifier": "https://api.pg.test/", "name": "pg"})),
    )
    .await;
    assert_eq!(api.status, 201, "{}", api.text);
    let client = on_a(
        http::Method::POST,
        "/api/v2/clients".to_owned(),
        Some(serde_json::json!({"name": "worker", "app_type": "non_interactive"})),
    )
    .await;
    let (id, secret) = (
        client.json["client_id"].as_str().expect("id").to_owned(),
        client.json["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    let grant = on_a(
        http::Method::POST,
        "/api/v2/client-grants".to_owned(),
        Some(serde_json::json!({"client_id": id, "audience": "https://api.pg.test/", "scope": []})),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    let claim_on = |base: String| {
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let reply = hookd_tests::token_at(&base, &id, &secret, "https://api.pg.test/").await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let token = reply.json["access_token"]
                .as_str()
                .expect("token")
                .to_owned();
            (
                hookd_tests::payload(&token)["https://foo.com/claim"].clone(),
                hookd_tests::header(&token)["kid"]
                    .as_str()
                    .expect("kid")
                    .to_owned(),
            )
        }
    };
    // B's snapshot follows A's writes through the change feed.
    eventually("B knows the client made on A", || {
        let issued = hookd_tests::token_at(&b.base, &id, &secret, "https://api.pg.test/");
        async move { (issued.await.status == 200).then_some(()) }
    })
    .await;
    assert_eq!(claim_on(b.base.clone()).await.0, serde_json::Value::Null);

    // A hook deployed and enabled through A runs on B.
    let hook = on_a(
        http::Method::POST,
        "/api/v2/hooks".to_owned(),
        Some(serde_json::json!({"name": "seed", "triggerId": "credentials-exchange"})),
    )
    .await;
    assert_eq!(hook.status, 201, "{}", hook.text);
    let hook_id = hook.json["id"].as_str().expect("id").to_owned();
    let uploaded = hookd_tests::upload_at(
        &a.base,
        &admin,
        &hook_id,
        hookd_tests::wasm(hookd_tests::SEED),
    )
    .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    eventually("B runs the hook enabled on A", || {
        let claim = claim_on(b.base.clone());
        async move { (claim.await.0 == "bar").then_some(()) }
    })
    .await;

    // B misses the notifications: its listening connection is terminated by the database
    // while A rotates the keys and disables the hook. It catches up all the same.
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let terminated: i64 = db
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .expect("terminate")
        .get(0);
    assert_eq!(terminated, 2, "both nodes listen");
    let rotated = on_a(
        http::Method::POST,
        "/api/v2/keys/signing/rotate".to_owned(),
        None,
    )
    .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let disabled = on_a(
        http::Method::PATCH,
        format!("/api/v2/hooks/{hook_id}"),
        Some(serde_json::json!({"enabled": false})),
    )
    .await;
    assert_eq!(disabled.status, 201, "{}", disabled.text);
    let published_by_a = kids(&a.base).await;
    let (_, signed_by_a) = claim_on(a.base.clone()).await;
    eventually("B follows A's rotation and its disabled hook", || {
        let (claim, published) = (claim_on(b.base.clone()), kids(&b.base));
        let (expected_kids, expected_kid) = (published_by_a.clone(), signed_by_a.clone());
        async move {
            let ((claim, kid), published) = (claim.await, published.await);
            (claim.is_null() && kid == expected_kid && published == expected_kids).then_some(())
        }
    })
    .await;
}

/// Creates the API `https://api.pg.test/` through `base`.
async fn create_test_api(base: &str, admin: &str) {
    let api = hookd_tests::call_at(
        base,
        admin,
        http::Method::POST,
        "/api/v2/resource-servers",
        Some(serde_json::json!({"identifier": "https://api.pg.test/", "name": "pg"})),
    )
    .await;
    assert_eq!(api.status, 201, "{}", api.text);
}

/// Creates the hook `seed` through `base` and uploads the seed Rust hook to it (the first
/// hook of its trigger, so enabled); returns its id.
async fn deploy_seed(base: &str, admin: &str) -> String {
    let hook = hookd_tests::call_at(
        base,
        admin,
        http::Method::POST,
        "/api/v2/hooks",
        Some(serde_json::json!({"name": "seed", "triggerId": "credentials-exchange"})),
    )
    .await;
    assert_eq!(hook.status, 201, "{}", hook.text);
    let hook_id = hook.json["id"].as_str().expect("id").to_owned();
    let uploaded =
        hookd_tests::upload_at(base, admin, &hook_id, hookd_tests::wasm(hookd_tests::SEED)).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    hook_id
}

/// Creates an application granted `audience` through `base`; returns its credentials.
async fn granted_client(base: &str, admin: &str, audience: &str) -> (String, String) {
    let created = hookd_tests::call_at(
        base,
        admin,
        http::Method::POST,
        "/api/v2/clients",
        Some(serde_json::json!({"name": "worker", "app_type": "non_interactive"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let (id, secret) = (
        created.json["client_id"].as_str().expect("id").to_owned(),
        created.json["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    let grant = hookd_tests::call_at(
        base,
        admin,
        http::Method::POST,
        "/api/v2/client-grants",
        Some(serde_json::json!({"client_id": id, "audience": audience, "scope": []})),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    (id, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_tokens_and_jwks_are_served_writes_get_503_and_every_node_catches_up()
 {
    let shared = Shared::start().await;
    let (postgres, url, dir, key_file) =
        (&shared.postgres, &shared.url, &shared.dir, &shared.key_file);
    let a = node(url, &dir.path().join("a"), key_file);
    let b = node(url, &dir.path().join("b"), key_file);
    let admin = admin_token(&a.base).await;
    create_test_api(&a.base, &admin).await;
    let (id, secret) = granted_client(&a.base, &admin, "https://api.pg.test/").await;
    eventually("B knows the client", || {
        let issued = hookd_tests::token_at(&b.base, &id, &secret, "https://api.pg.test/");
        async move { (issued.await.status == 200).then_some(()) }
    })
    .await;

    postgres.halt();
    // Tokens and keys come from each node's memory: both keep serving.
    for node in [&a, &b] {
        let issued = hookd_tests::token_at(&node.base, &id, &secret, "https://api.pg.test/").await;
        assert_eq!(issued.status, 200, "{}", issued.text);
        assert!(!kids(&node.base).await.is_empty());
    }
    // A write cannot be made: 503 within the bound, nothing hangs, nothing leaks.
    let started = std::time::Instant::now();
    let refused = hookd_tests::call_at(
        &a.base,
        &admin,
        http::Method::POST,
        "/api/v2/clients",
        Some(serde_json::json!({"name": "late", "app_type": "non_interactive"})),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.headers["retry-after"], "2");
    assert_eq!(refused.json["errorCode"], "temporarily_unavailable");
    assert!(
        !refused.text.contains("127.0.0.1"),
        "no internals: {}",
        refused.text
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "answered in {took:?}"
    );

    // Away for a while longer: long enough for several polls of the change feed to fail.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;

    // Back: A writes first, and B, which reconnects on its own, catches up.
    postgres.resume();
    let (late_id, late_secret) = eventually("A writes again", || {
        let created = hookd_tests::call_at(
            &a.base,
            &admin,
            http::Method::POST,
            "/api/v2/clients",
            Some(serde_json::json!({"name": "late", "app_type": "non_interactive"})),
        );
        async move {
            let reply = created.await;
            (reply.status == 201).then(|| {
                (
                    reply.json["client_id"].as_str().expect("id").to_owned(),
                    reply.json["client_secret"]
                        .as_str()
                        .expect("secret")
                        .to_owned(),
                )
            })
        }
    })
    .await;
    let grant = hookd_tests::call_at(
        &a.base,
        &admin,
        http::Method::POST,
        "/api/v2/client-grants",
        Some(serde_json::json!({"client_id": late_id, "audience": "https://api.pg.test/", "scope": []})),
    )
    .await;
    assert_eq!(grant.status, 201, "{}", grant.text);
    eventually("B serves the client A made after the outage", || {
        let issued = hookd_tests::token_at(&b.base, &late_id, &late_secret, "https://api.pg.test/");
        async move { (issued.await.status == 200).then_some(()) }
    })
    .await;
    // Each node said once that it lost the feed, and once that it caught up: not at every
    // poll while the database was away.
    for node in [&a, &b] {
        let log = eventually("the node says it caught up", || {
            let log = node.log();
            async move { log.contains("caught up again").then_some(log) }
        })
        .await;
        assert_eq!(
            log.matches("cannot follow the change feed").count(),
            1,
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_starting_together_on_an_empty_database_make_one_admin_and_one_key_set() {
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);
    let starting: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let (url, data, key_file) = (url.clone(), dir.path().join(name), key_file.clone());
            std::thread::spawn(move || node(&url, &data, &key_file))
        })
        .collect();
    let nodes: Vec<hookd_tests::ServeProcess> = starting
        .into_iter()
        .map(|thread| thread.join().expect("every node starts"))
        .collect();

    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM hookd_schema").await,
        i64::from(SCHEMA_VERSION),
        "every version once"
    );
    // now() is the transaction's time: one transaction made them all.
    assert_eq!(
        count("SELECT count(DISTINCT applied_at) FROM hookd_schema").await,
        1,
        "one migration"
    );
    assert_eq!(count("SELECT count(*) FROM clients").await, 1, "one admin");
    assert_eq!(
        count("SELECT count(*) FROM signing_keys WHERE record ->> 'state' = 'current'").await,
        3,
        "one current key per algorithm"
    );
    assert_eq!(
        count("SELECT count(DISTINCT revision) FROM changes WHERE entity = 'keys'").await,
        1,
        "one node made the keys; the others found them"
    );
    // Every node publishes the same keys and signs with one of them.
    let published = kids(&nodes[0].base).await;
    for node in &nodes {
        assert_eq!(kids(&node.base).await, published);
        let issued = hookd_tests::token_at(
            &node.base,
            "pg-admin",
            "pg-admin-secret-0123456789",
            "https://pg.test/api/v2/",
        )
        .await;
        assert_eq!(issued.status, 200, "{}", issued.text);
        let kid = hookd_tests::header(issued.json["access_token"].as_str().expect("token"))["kid"]
            .as_str()
            .expect("kid")
            .to_owned();
        assert!(published.contains(&kid), "{kid} not in {published:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_rotating_keys_at_once_converge_and_every_token_they_sign_verifies() {
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);
    let a = node(url, &dir.path().join("a"), key_file);
    let b = node(url, &dir.path().join("b"), key_file);
    let admin_on = |base: String| async move {
        let reply = hookd_tests::token_at(
            &base,
            "pg-admin",
            "pg-admin-secret-0123456789",
            "https://pg.test/api/v2/",
        )
        .await;
        reply.json["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let (admin_a, admin_b) = (
        admin_on(a.base.clone()).await,
        admin_on(b.base.clone()).await,
    );
    let mut conflicts = 0;
    for round in 0..3 {
        let (on_a, on_b) = tokio::join!(
            hookd_tests::call_at(
                &a.base,
                &admin_a,
                http::Method::POST,
                "/api/v2/keys/signing/rotate",
                None
            ),
            hookd_tests::call_at(
                &b.base,
                &admin_b,
                http::Method::POST,
                "/api/v2/keys/signing/rotate",
                None
            ),
        );
        for reply in [&on_a, &on_b] {
            assert!(
                reply.status == 201 || reply.status == 409,
                "round {round}: {} {}",
                reply.status,
                reply.text
            );
        }
        assert!(
            on_a.status == 201 || on_b.status == 201,
            "round {round}: one rotation wins"
        );
        conflicts += usize::from(on_a.status == 409) + usize::from(on_b.status == 409);
        // Whatever each node signs with right away is published once they agree.
        let mut signed = Vec::new();
        for base in [&a.base, &b.base] {
            let issued = hookd_tests::token_at(
                base,
                "pg-admin",
                "pg-admin-secret-0123456789",
                "https://pg.test/api/v2/",
            )
            .await;
            let access = issued.json["access_token"].as_str().expect("token");
            signed.push(
                hookd_tests::header(access)["kid"]
                    .as_str()
                    .expect("kid")
                    .to_owned(),
            );
        }
        let published = eventually("the nodes publish the same keys", || {
            let (ka, kb) = (kids(&a.base), kids(&b.base));
            async move {
                let (ka, kb) = (ka.await, kb.await);
                (ka == kb).then_some(ka)
            }
        })
        .await;
        for kid in &signed {
            assert!(
                published.contains(kid),
                "round {round}: {kid} signed a token but is not published: {published:?}"
            );
        }
        // An acknowledged rotation is never undone by the other: every key a 201 listed is
        // what both nodes publish.
        for reply in [&on_a, &on_b]
            .into_iter()
            .filter(|reply| reply.status == 201)
        {
            for key in reply.json.as_array().expect("keys") {
                let kid = key["kid"].as_str().expect("kid");
                assert!(
                    published.iter().any(|p| p == kid),
                    "round {round}: the acknowledged key {kid} was lost: {published:?}"
                );
            }
        }
    }
    // Each rotation generates RSA keys for a few hundred milliseconds between reading the set
    // and writing it, so rotations sent at once overlap: the later one must have lost.
    println!("{conflicts} of 6 concurrent rotations answered 409");
    assert!(
        conflicts > 0,
        "no rotation was refused in three concurrent rounds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_writes_on_one_node_are_live_on_the_other_two_within_a_bound() {
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);
    let a = node(url, &dir.path().join("a"), key_file);
    let others = [
        node(url, &dir.path().join("b"), key_file),
        node(url, &dir.path().join("c"), key_file),
    ];
    let admin = admin_token(&a.base).await;
    create_test_api(&a.base, &admin).await;

    // Each write is a client and its grant made through A; it is live on a node once that
    // node issues the client a token.
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let (id, secret) = granted_client(&a.base, &admin, "https://api.pg.test/").await;
        let written = std::time::Instant::now();
        for other in &others {
            eventually("the write is live on every node", || {
                let issued =
                    hookd_tests::token_at(&other.base, &id, &secret, "https://api.pg.test/");
                async move { (issued.await.status == 200).then_some(()) }
            })
            .await;
            latencies.push(written.elapsed());
        }
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "propagation of 50 writes to 2 nodes: p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        latencies[latencies.len() - 1]
    );
    // The change feed notifies at once; the poll that backs it up runs every second.
    assert!(
        at(0.99) < std::time::Duration::from_secs(3),
        "p99 {:?}",
        at(0.99)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_max_staleness_refuses_tokens_once_the_database_has_been_away_that_long() {
    let shared = Shared::start().await;
    let (postgres, url, dir, key_file) =
        (&shared.postgres, &shared.url, &shared.dir, &shared.key_file);
    let strict = node_with(
        url,
        &dir.path().join("a"),
        key_file,
        &["--max-staleness", "2"],
    );
    let lenient = node(url, &dir.path().join("b"), key_file);
    let admin = |base: String| async move {
        hookd_tests::token_at(
            &base,
            "pg-admin",
            "pg-admin-secret-0123456789",
            "https://pg.test/api/v2/",
        )
        .await
    };
    assert_eq!(admin(strict.base.clone()).await.status, 200);

    postgres.halt();
    let refused = eventually("the strict node refuses tokens", || {
        let reply = admin(strict.base.clone());
        async move {
            let reply = reply.await;
            (reply.status != 200).then_some(reply)
        }
    })
    .await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.json["error"], "temporarily_unavailable");
    // The default keeps serving from what it knows.
    assert_eq!(admin(lenient.base.clone()).await.status, 200);

    postgres.resume();
    eventually(
        "the strict node serves again once it hears from the database",
        || {
            let reply = admin(strict.base.clone());
            async move { (reply.await.status == 200).then_some(()) }
        },
    )
    .await;
}

/// `hookd cluster status --json` against `base`, as the admin every node is started with.
async fn cluster_status(base: &str) -> serde_json::Value {
    let mut command = std::process::Command::new(hookd_tests::hookd_binary());
    command
        .args(["cluster", "status", "--json", "--server", base])
        // No admin.json to read: the credentials come from the environment.
        .args(["--data-dir", "/nonexistent"])
        .env("HOOKD_ADMIN_CLIENT_ID", "pg-admin")
        .env("HOOKD_ADMIN_CLIENT_SECRET", "pg-admin-secret-0123456789");
    let output = tokio::task::spawn_blocking(move || command.output().expect("run hookd"))
        .await
        .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

/// The revision a management write produced, from its response header.
fn written_revision(reply: &hookd_tests::Reply) -> i64 {
    reply.headers["hookd-revision"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a revision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_further_behind_than_the_kept_history_reloads_everything_and_reports_what_it_applied()
 {
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);
    let history = ["--change-history", "3"];
    let a = node_with(
        url,
        &dir.path().join("a"),
        key_file,
        &[&history[..], &["--node-name", "node-a"]].concat(),
    );
    let b = node_with(
        url,
        &dir.path().join("b"),
        key_file,
        &[&history[..], &["--node-name", "node-b"]].concat(),
    );
    let admin = admin_token(&a.base).await;
    let api = hookd_tests::call_at(
        &a.base,
        &admin,
        http::Method::POST,
        "/api/v2/resource-servers",
        Some(serde_json::json!({"identifier": "https://api.pg.test/", "name": "pg"})),
    )
    .await;
    assert_eq!(api.status, 201, "{}", api.text);
    let first = written_revision(&api);

    // Both nodes report themselves, and B reaches the revision A's write produced.
    let status = eventually("both nodes report, B at the API's revision", || {
        let status = cluster_status(&a.base);
        async move {
            let status = status.await;
            let nodes = status["nodes"].as_array()?.clone();
            let b = nodes.iter().find(|node| node["name"] == "node-b")?;
            (nodes.len() == 2 && b["applied_revision"].as_i64()? >= first).then_some(status)
        }
    })
    .await;
    assert!(status["revision"].as_i64().expect("revision") >= first);
    for node in status["nodes"].as_array().expect("nodes") {
        assert_eq!(node["live"], true, "{node}");
        assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    }

    // B stops while A writes more revisions than the database keeps.
    b.pause();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(granted_client(&a.base, &admin, "https://api.pg.test/").await);
    }
    let rotated = hookd_tests::call_at(
        &a.base,
        &admin,
        http::Method::POST,
        "/api/v2/keys/signing/rotate",
        None,
    )
    .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let last = written_revision(&rotated);
    assert!(last >= first + 7, "{first} .. {last}");
    let published_by_a = kids(&a.base).await;
    b.resume();

    // It cannot catch up change by change, so it reloads, and serves everything A wrote.
    for (id, secret) in &clients {
        eventually("B serves every client A made while it was stopped", || {
            let issued = hookd_tests::token_at(&b.base, id, secret, "https://api.pg.test/");
            async move { (issued.await.status == 200).then_some(()) }
        })
        .await;
    }
    eventually("B publishes A's rotated keys", || {
        let (published, expected) = (kids(&b.base), published_by_a.clone());
        async move { (published.await == expected).then_some(()) }
    })
    .await;
    assert!(b.log().contains("reloading everything"), "{}", b.log());
    let status = eventually("B reports the last revision", || {
        let status = cluster_status(&b.base);
        async move {
            let status = status.await;
            let b = status["nodes"]
                .as_array()?
                .iter()
                .find(|node| node["name"] == "node-b")?
                .clone();
            (b["applied_revision"].as_i64()? >= last && b["behind"] == 0).then_some(status)
        }
    })
    .await;
    assert!(status["revision"].as_i64().expect("revision") >= last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nodes_hook_invocations_are_listed_and_followed_through_any_node() {
    use http_body_util::BodyExt as _;
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);
    let a = node_with(
        url,
        &dir.path().join("a"),
        key_file,
        &["--node-name", "node-a"],
    );
    let b = node_with(
        url,
        &dir.path().join("b"),
        key_file,
        &["--node-name", "node-b"],
    );
    let admin = admin_token(&a.base).await;
    create_test_api(&a.base, &admin).await;
    let (id, secret) = granted_client(&a.base, &admin, "https://api.pg.test/").await;
    let hook_id = deploy_seed(&a.base, &admin).await;
    let claim_from = |base: String| {
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let reply = hookd_tests::token_at(&base, &id, &secret, "https://api.pg.test/").await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let token = reply.json["access_token"].as_str().expect("token");
            let claim = hookd_tests::payload(token)["https://foo.com/claim"].clone();
            let request_id = reply.headers["x-request-id"].to_str().expect("ascii");
            (claim, request_id.to_owned())
        }
    };
    eventually("B runs the hook", || {
        let claim = claim_from(b.base.clone());
        async move { (claim.await.0 == "bar").then_some(()) }
    })
    .await;

    // Someone follows the hook's log on B.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::get(format!("{}/api/v2/hooks/{hook_id}/logs?follow", b.base))
        .header("authorization", format!("Bearer {admin}"))
        .body(http_body_util::Full::default())
        .expect("request");
    let response = client.request(request).await.expect("follow");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // The relay starts from what is logged once it sees a follower.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    // A token from A: its invocation reaches B's follower, and B's list.
    let (_, from_a) = claim_from(a.base.clone()).await;
    let mut followed = String::new();
    let arrived = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !followed.contains(&from_a) {
            let frame = body.frame().await.expect("a frame").expect("data");
            followed
                .push_str(std::str::from_utf8(&frame.into_data().expect("data")).expect("utf-8"));
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "A's invocation reaches B's follower: {followed}"
    );
    let line = followed
        .lines()
        .find(|line| line.contains(&from_a))
        .expect("the line");
    let entry: serde_json::Value = serde_json::from_str(line).expect("json line");
    assert_eq!(entry["node"], "node-a");
    assert_eq!(entry["outcome"]["result"], "allowed");

    // A token from B: listed through A, beside A's own.
    let (_, from_b) = claim_from(b.base.clone()).await;
    let logs_path = format!("/api/v2/hooks/{hook_id}/logs");
    let listed = eventually("A lists both nodes' invocations", || {
        let logs = hookd_tests::call_at(&a.base, &admin, http::Method::GET, &logs_path, None);
        let (from_a, from_b) = (from_a.clone(), from_b.clone());
        async move {
            let logs = logs.await;
            assert_eq!(logs.status, 200, "{}", logs.text);
            let entries = logs.json.as_array()?.clone();
            let ids: Vec<&str> = entries
                .iter()
                .filter_map(|entry| entry["request_id"].as_str())
                .collect();
            (ids.contains(&from_a.as_str()) && ids.contains(&from_b.as_str())).then_some(entries)
        }
    })
    .await;
    let node_of = |request_id: &str| {
        listed
            .iter()
            .find(|entry| entry["request_id"] == request_id)
            .map(|entry| entry["node"].clone())
    };
    assert_eq!(node_of(&from_a), Some("node-a".into()));
    assert_eq!(node_of(&from_b), Some("node-b".into()));
    // Oldest first, like the single-node list.
    let times: Vec<u64> = listed
        .iter()
        .map(|entry| entry["time"].as_u64().expect("time"))
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");
    // B's own invocation reaches B's follower once: directly, not again through the relay.
    let mut more = String::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(frame)) = body.frame().await {
            more.push_str(std::str::from_utf8(&frame.into_data().expect("data")).expect("utf-8"));
        }
    })
    .await;
    assert_eq!(
        format!("{followed}{more}").matches(from_b.as_str()).count(),
        1,
        "{followed}{more}"
    );
}

#[tokio::test]
async fn the_shared_hook_log_keeps_the_newest_entries_of_each_hook_in_order() {
    let postgres = TestPostgres::start();
    let url = postgres.create_database("hookd").await;
    let store = hookd::store::postgres::PgStore::connect(&url, 2, Default::default())
        .await
        .expect("connect");
    let entries = |hook: &str, range: std::ops::Range<u32>| -> Vec<(String, String)> {
        range
            .map(|n| (hook.to_owned(), serde_json::json!({ "n": n }).to_string()))
            .collect()
    };
    store
        .append_hook_logs("a#1", &entries("h1", 0..5), 4)
        .await
        .expect("append");
    store
        .append_hook_logs("b#1", &entries("h1", 5..7), 4)
        .await
        .expect("append");
    store
        .append_hook_logs("b#1", &entries("h2", 0..2), 4)
        .await
        .expect("append");
    let numbers = |texts: Vec<String>| -> Vec<u64> {
        texts
            .iter()
            .map(|text| {
                serde_json::from_str::<serde_json::Value>(text).expect("json")["n"]
                    .as_u64()
                    .expect("n")
            })
            .collect()
    };
    // Four kept of h1, the newest, oldest first; h2's own two untouched.
    assert_eq!(
        numbers(store.hook_logs("h1", 100).await.expect("h1")),
        [3, 4, 5, 6]
    );
    assert_eq!(numbers(store.hook_logs("h1", 2).await.expect("h1")), [5, 6]);
    assert_eq!(
        numbers(store.hook_logs("h2", 100).await.expect("h2")),
        [0, 1]
    );
    // A follower on node a, past the fifth entry, sees b's entries only.
    assert_eq!(store.last_hook_log().await.expect("last"), 9);
    let after: Vec<i64> = store
        .hook_logs_after(5, "a#1", 100)
        .await
        .expect("after")
        .into_iter()
        .map(|(sequence, _)| sequence)
        .collect();
    assert_eq!(after, [6, 7, 8, 9]);
    assert!(
        store
            .hook_logs_after(0, "b#1", 100)
            .await
            .expect("after")
            .iter()
            .all(|(sequence, _)| *sequence <= 5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_speaks_tls_to_postgresql_and_verifies_the_servers_certificate() {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("certificate");
    let postgres = TestPostgres::start_with_tls(&leaf.pem(), &key.serialize_pem());
    let url = format!(
        "{}?sslmode=require",
        postgres.create_database("hookd").await
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("secrets.key");
    std::fs::write(&key_file, hookd_tests::TEST_SECRETS_KEY).expect("key file");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("CA file");

    // A certificate no trusted CA signed is refused: the node does not start, and says so.
    let refused = std::process::Command::new(hookd_tests::hookd_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
        .arg("--data-dir")
        .arg(dir.path().join("untrusting"))
        .arg("--secrets-key-file")
        .arg(&key_file)
        .env_remove("HOOKD_DATABASE_CA_FILE")
        .output()
        .expect("run hookd");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("could not connect to PostgreSQL") && said.contains("certificate"),
        "{said}"
    );

    // With the CA that signed it, the node connects over TLS and serves.
    let node = node_with(
        &url,
        &dir.path().join("a"),
        &key_file,
        &["--database-ca-file", ca_file.to_str().expect("utf-8")],
    );
    let admin = admin_token(&node.base).await;
    let nodes =
        hookd_tests::call_at(&node.base, &admin, http::Method::GET, "/api/v2/nodes", None).await;
    assert_eq!(nodes.status, 200, "{}", nodes.text);
    // Every connection hookd holds (the pool's and the change feed's) is encrypted; this
    // test's own connection is the only plain one.
    let db = connect(&postgres.url("hookd")).await;
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = 'hookd'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(encrypted >= 2, "the pool and the listener: {encrypted}");
    assert_eq!(plain, 1, "only this test's connection");
}

/// Whether `token` verifies against `jwks` (a JWKS document) for the test API.
fn verifies_with(token: &str, jwks: &serde_json::Value) -> bool {
    let Ok(set) = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone()) else {
        return false;
    };
    let kid = hookd_tests::header(token)["kid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let Some(key) = set
        .find(&kid)
        .and_then(|jwk| jsonwebtoken::DecodingKey::from_jwk(jwk).ok())
    else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://api.pg.test/"]);
    validation.set_issuer(&["https://pg.test/"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_switch_hooks_together_and_tokens_signed_across_a_rotation_verify_everywhere() {
    let shared = Shared::start().await;
    let (url, dir, key_file) = (&shared.url, &shared.dir, &shared.key_file);
    let nodes: Vec<hookd_tests::ServeProcess> = ["a", "b", "c"]
        .into_iter()
        .map(|name| node(url, &dir.path().join(name), key_file))
        .collect();
    let bases: Vec<String> = nodes.iter().map(|node| node.base.clone()).collect();
    let admin = admin_token(&bases[0]).await;
    let on = |n: usize, method, path: String, body| {
        let (base, admin) = (bases[n].clone(), admin.clone());
        async move { hookd_tests::call_at(&base, &admin, method, &path, body).await }
    };
    create_test_api(&bases[0], &admin).await;
    let (id, secret) = granted_client(&bases[0], &admin, "https://api.pg.test/").await;
    let claims_from = |base: String| {
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let reply = hookd_tests::token_at(&base, &id, &secret, "https://api.pg.test/").await;
            (reply.status == 200).then(|| {
                let token = reply.json["access_token"].as_str().expect("token");
                hookd_tests::payload(token)
            })
        }
    };
    let every_node = |check: fn(&serde_json::Value) -> bool| {
        let bases = bases.clone();
        async move {
            for base in bases {
                let claims = claims_from(base).await;
                if !claims.as_ref().is_some_and(check) {
                    return None;
                }
            }
            Some(())
        }
    };

    // The seed hook, deployed and enabled through A, runs on all three.
    deploy_seed(&bases[0], &admin).await;
    eventually("every node runs the seed hook", || {
        every_node(|claims| claims["https://foo.com/claim"] == "bar")
    })
    .await;

    // Another hook, enabled through B: every node switches to it.
    let metadata = on(
        1,
        http::Method::POST,
        "/api/v2/hooks".to_owned(),
        Some(serde_json::json!({"name": "metadata", "triggerId": "credentials-exchange"})),
    )
    .await;
    assert_eq!(metadata.status, 201, "{}", metadata.text);
    assert_eq!(
        metadata.json["enabled"], false,
        "a second hook starts disabled"
    );
    let metadata_id = metadata.json["id"].as_str().expect("id").to_owned();
    let secrets = on(
        1,
        http::Method::POST,
        format!("/api/v2/hooks/{metadata_id}/secrets"),
        Some(serde_json::json!({"KEY_ID": "k-1"})),
    )
    .await;
    assert_eq!(secrets.status, 201, "{}", secrets.text);
    let uploaded = hookd_tests::upload_at(
        &bases[1],
        &admin,
        &metadata_id,
        hookd_tests::wasm(hookd_tests::METADATA_CLAIMS),
    )
    .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let enabled = on(
        1,
        http::Method::PATCH,
        format!("/api/v2/hooks/{metadata_id}"),
        Some(serde_json::json!({"enabled": true})),
    )
    .await;
    assert_eq!(enabled.status, 201, "{}", enabled.text);
    eventually("every node runs the hook enabled on B, and only it", || {
        every_node(|claims| {
            claims["https://hookd.example.com/key_id"] == "k-1"
                && claims["https://foo.com/claim"].is_null()
        })
    })
    .await;
    let hooks = on(2, http::Method::GET, "/api/v2/hooks".to_owned(), None).await;
    let enabled: Vec<&str> = hooks
        .json
        .as_array()
        .expect("hooks")
        .iter()
        .filter(|hook| hook["enabled"] == true)
        .map(|hook| hook["name"].as_str().expect("name"))
        .collect();
    assert_eq!(enabled, ["metadata"]);

    // Rotation under load: all three keep issuing tokens while C rotates.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = bases
        .iter()
        .map(|base| {
            let (base, id, secret, stop) = (base.clone(), id.clone(), secret.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                // Bounded in count and time: at most 2,000 tokens, until told to stop.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && tokens.len() < 2_000 {
                    let reply =
                        hookd_tests::token_at(&base, &id, &secret, "https://api.pg.test/").await;
                    assert_eq!(reply.status, 200, "{}", reply.text);
                    tokens.push(
                        reply.json["access_token"]
                            .as_str()
                            .expect("token")
                            .to_owned(),
                    );
                }
                tokens
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rotated = on(
        2,
        http::Method::POST,
        "/api/v2/keys/signing/rotate".to_owned(),
        None,
    )
    .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let current_after: Vec<String> = rotated
        .json
        .as_array()
        .expect("keys")
        .iter()
        .filter(|key| key["current"] == true && key["alg"] == "RS256")
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect();
    // Until every node signs with the new key, and a moment longer.
    eventually("every node signs with the rotated key", || {
        let bases = bases.clone();
        let (id, secret, current_after) = (id.clone(), secret.clone(), current_after.clone());
        async move {
            for base in bases {
                let reply =
                    hookd_tests::token_at(&base, &id, &secret, "https://api.pg.test/").await;
                let token = reply.json["access_token"].as_str()?;
                let kid = hookd_tests::header(token)["kid"].as_str()?.to_owned();
                if !current_after.contains(&kid) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut tokens = Vec::new();
    for task in load {
        let issued = task.await.expect("load task");
        assert!(!issued.is_empty());
        tokens.extend(issued);
    }
    let kids_used: std::collections::BTreeSet<String> = tokens
        .iter()
        .map(|token| {
            hookd_tests::header(token)["kid"]
                .as_str()
                .expect("kid")
                .to_owned()
        })
        .collect();
    assert!(
        kids_used.len() >= 2,
        "the load spans the rotation: {kids_used:?}"
    );
    let published = eventually("the nodes publish the same keys", || {
        let bases = bases.clone();
        async move {
            let mut all = Vec::new();
            for base in &bases {
                all.push(kids(base).await);
            }
            all.windows(2)
                .all(|pair| pair[0] == pair[1])
                .then(|| all[0].clone())
        }
    })
    .await;
    assert!(kids_used.iter().all(|kid| published.contains(kid)));
    for base in &bases {
        let jwks = hookd_tests::send(
            http::Method::GET,
            &format!("{base}/.well-known/jwks.json"),
            &[],
            "",
        )
        .await
        .json;
        let failing = tokens
            .iter()
            .filter(|token| !verifies_with(token, &jwks))
            .count();
        assert_eq!(
            failing,
            0,
            "{failing} of {} tokens fail against {base}'s JWKS",
            tokens.len()
        );
    }
    println!(
        "{} tokens from three nodes across one rotation, signed with {} keys, verify on every node",
        tokens.len(),
        kids_used.len()
    );
}
