//! The store's contract, run against both backends: sled in a temporary directory and
//! PostgreSQL in a cluster of the test's own. Each rule the Management API relies on (unique
//! identifiers and names, one grant per pair, grants going with their client or API, one
//! enabled hook per trigger, content-addressed modules, the key set, the installation's
//! records) gives the same answers and the same errors on both.

use hookd::hooks::ExtensibilityPoint;
use hookd::management::{NewApi, new_api_record, new_client_record};
use hookd::model::{
    Client, ClientGrant, Hook, HookVersion, KeyState, SigningAlg, SigningKey, Tenant,
};
use hookd::secrets::SecretHasher;
use hookd::store::postgres::{PgStore, PostgresTimeouts};
use hookd::store::{AdminBootstrap, RecordStore, Store, StoreError};
use hookd_tests::postgres::TestPostgres;
use hookd_tests::test_secret_box;

fn client(id: &str) -> Client {
    new_client_record(
        &SecretHasher::new(b"contract"),
        &format!("app {id}"),
        Default::default(),
        id,
        "a-secret-of-enough-length",
    )
    .expect("client")
}

fn api(id: &str, identifier: &str) -> hookd::model::Api {
    let (mut api, _) = new_api_record(
        &test_secret_box(),
        NewApi::new(identifier, identifier, &["read", "write"]),
    )
    .expect("api");
    api.id = id.to_owned();
    api
}

fn grant(id: &str, client_id: &str, audience: &str) -> ClientGrant {
    ClientGrant {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        audience: audience.to_owned(),
        scope: vec!["read".to_owned()],
    }
}

fn version(n: u8) -> HookVersion {
    HookVersion {
        sha256: format!("{n:02x}").repeat(32),
        size: 3,
        uploaded_at: u64::from(n),
    }
}

fn hook(id: &str, name: &str, enabled: bool, versions: &[u8]) -> Hook {
    Hook {
        id: id.to_owned(),
        name: name.to_owned(),
        trigger: ExtensibilityPoint::CredentialsExchange,
        enabled,
        versions: versions.iter().map(|n| version(*n)).collect(),
        active_version: versions.last().map(|n| version(*n).sha256),
        limits: Default::default(),
        failure_policy: Default::default(),
        reuse_instances: false,
        secrets: Default::default(),
        canary: None,
        shadow: None,
    }
}

fn key(kid: &str) -> SigningKey {
    let mut key =
        hookd::keys::generate(SigningAlg::ES256, KeyState::Current, 1, &test_secret_box())
            .expect("key");
    key.kid = kid.to_owned();
    key
}

fn is_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

async fn clients_contract(store: &impl RecordStore) {
    store.insert_client(&client("c1")).await.expect("insert");
    store.insert_client(&client("c2")).await.expect("insert");
    assert!(is_conflict(store.insert_client(&client("c1")).await));
    assert_eq!(store.client("c1").await.expect("read"), Some(client("c1")));
    assert_eq!(store.client("nobody").await.expect("read"), None);
    let ids: Vec<String> = store
        .clients()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    let renamed = store
        .modify_client("c1", |c| c.name = "renamed".to_owned())
        .await
        .expect("modify");
    assert_eq!(renamed.name, "renamed");
    assert_eq!(
        store.client("c1").await.expect("read").map(|c| c.name),
        Some("renamed".to_owned())
    );
    assert!(is_not_found(
        store.modify_client("nobody", |c| c.name.clear()).await
    ));
    store.delete_client("c2").await.expect("delete");
    assert!(is_not_found(store.delete_client("c2").await));
    assert_eq!(store.client("c2").await.expect("read"), None);
}

async fn apis_and_grants_contract(store: &impl RecordStore) {
    store.insert_client(&client("g1")).await.expect("client");
    store.insert_client(&client("g2")).await.expect("client");
    store
        .insert_api(&api("a1", "https://one/"))
        .await
        .expect("api");
    store
        .insert_api(&api("a2", "https://two/"))
        .await
        .expect("api");
    assert!(is_conflict(
        store.insert_api(&api("a3", "https://one/")).await
    ));
    assert_eq!(
        store.api_by_identifier("https://two/").await.expect("read"),
        Some(api("a2", "https://two/"))
    );
    assert_eq!(
        store.api("a1").await.expect("read"),
        Some(api("a1", "https://one/"))
    );
    let mut changed = api("a1", "https://one/");
    changed.token_lifetime = 60;
    store.update_api(&changed).await.expect("update");
    assert_eq!(
        store
            .api("a1")
            .await
            .expect("read")
            .map(|a| a.token_lifetime),
        Some(60)
    );
    assert!(is_conflict(
        store.update_api(&api("a1", "https://moved/")).await
    ));
    assert!(is_not_found(
        store.update_api(&api("zz", "https://zz/")).await
    ));

    store
        .insert_grant(&grant("gr1", "g1", "https://one/"))
        .await
        .expect("grant");
    store
        .insert_grant(&grant("gr2", "g1", "https://two/"))
        .await
        .expect("grant");
    store
        .insert_grant(&grant("gr3", "g2", "https://one/"))
        .await
        .expect("grant");
    assert!(is_conflict(
        store
            .insert_grant(&grant("gr4", "g1", "https://one/"))
            .await
    ));
    assert_eq!(
        store.grant_for("g1", "https://two/").await.expect("read"),
        Some(grant("gr2", "g1", "https://two/"))
    );
    let mut widened = grant("gr1", "g1", "https://one/");
    widened.scope.push("write".to_owned());
    store.update_grant(&widened).await.expect("update");
    assert_eq!(store.grant("gr1").await.expect("read"), Some(widened));
    assert!(is_not_found(
        store
            .update_grant(&grant("nope", "g1", "https://one/"))
            .await
    ));

    // Grants go with their API and with their client.
    store.delete_api("a2").await.expect("delete api");
    assert_eq!(store.grant("gr2").await.expect("read"), None);
    assert!(is_not_found(store.delete_api("a2").await));
    store.delete_client("g2").await.expect("delete client");
    assert_eq!(store.grant("gr3").await.expect("read"), None);
    let left: Vec<String> = store
        .grants()
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(left, ["gr1"]);
    store.delete_grant("gr1").await.expect("delete grant");
    assert!(is_not_found(store.delete_grant("gr1").await));
    assert_eq!(
        store.grant_for("g1", "https://one/").await.expect("read"),
        None
    );
}

async fn hooks_contract(store: &impl RecordStore) {
    let trigger = ExtensibilityPoint::CredentialsExchange;
    store
        .insert_hook(&hook("h1", "first", true, &[1]), b"one")
        .await
        .expect("insert");
    assert_eq!(
        store.module(&version(1).sha256).await.expect("module"),
        Some(b"one".to_vec())
    );
    assert!(is_conflict(
        store
            .insert_hook(&hook("h9", "first", false, &[]), b"")
            .await
    ));
    // Enabling another hook of the trigger disables the first, in the same write.
    store
        .insert_hook(&hook("h2", "second", true, &[2]), b"two")
        .await
        .expect("insert");
    assert_eq!(
        store
            .enabled_hook(trigger)
            .await
            .expect("read")
            .map(|h| h.id),
        Some("h2".to_owned())
    );
    assert_eq!(
        store.hook("h1").await.expect("read").map(|h| h.enabled),
        Some(false)
    );
    // A new version (h2 also lists h1's module, so it is shared), then h1 enabled again.
    let mut second = hook("h2", "second", true, &[1, 2, 3]);
    second.active_version = Some(version(3).sha256);
    store
        .add_hook_version(&second, b"three")
        .await
        .expect("version");
    assert_eq!(
        store.module(&version(3).sha256).await.expect("module"),
        Some(b"three".to_vec())
    );
    store
        .update_hook(&hook("h1", "first", true, &[1]))
        .await
        .expect("enable");
    let enabled: Vec<String> = store
        .hooks()
        .await
        .expect("list")
        .into_iter()
        .filter(|h| h.enabled)
        .map(|h| h.id)
        .collect();
    assert_eq!(enabled, ["h1"]);
    assert!(is_not_found(
        store.update_hook(&hook("h7", "seventh", false, &[])).await
    ));
    assert!(is_conflict(
        store.update_hook(&hook("h1", "second", true, &[1])).await
    ));
    // Deleting a hook deletes the modules no other hook lists, and keeps the shared one.
    let deleted = store.delete_hook("h2").await.expect("delete");
    assert_eq!(deleted.versions.len(), 3);
    assert_eq!(
        store.module(&version(3).sha256).await.expect("module"),
        None
    );
    assert_eq!(
        store.module(&version(2).sha256).await.expect("module"),
        None
    );
    assert_eq!(
        store.module(&version(1).sha256).await.expect("module"),
        Some(b"one".to_vec())
    );
    assert!(is_not_found(store.delete_hook("h2").await));
}

async fn keys_and_installation_contract(store: &impl RecordStore) {
    store
        .put_signing_keys(&[key("k1"), key("k2")])
        .await
        .expect("keys");
    let kids = |keys: Vec<SigningKey>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(
        kids(store.signing_keys().await.expect("keys")),
        ["k1", "k2"]
    );
    store.put_signing_keys(&[key("k3")]).await.expect("keys");
    assert_eq!(kids(store.signing_keys().await.expect("keys")), ["k3"]);
    // A rotation writes only over the set it read.
    assert!(is_conflict(
        store.replace_signing_keys(&[key("k1")], &[key("k4")]).await
    ));
    assert_eq!(kids(store.signing_keys().await.expect("keys")), ["k3"]);
    store
        .replace_signing_keys(&[key("k3")], &[key("k3"), key("k4")])
        .await
        .expect("replace");
    assert_eq!(
        kids(store.signing_keys().await.expect("keys")),
        ["k3", "k4"]
    );

    assert_eq!(
        store.secret_hash_key(b"first").await.expect("key"),
        b"first"
    );
    assert_eq!(
        store.secret_hash_key(b"second").await.expect("key"),
        b"first"
    );
    store
        .replace_secret_hash_key(b"wrong", b"never")
        .await
        .expect("replace");
    store
        .replace_secret_hash_key(b"first", b"sealed")
        .await
        .expect("replace");
    assert_eq!(
        store.secret_hash_key(b"third").await.expect("key"),
        b"sealed"
    );

    assert_eq!(store.tenant().await.expect("tenant"), None);
    let tenant = Tenant {
        name: "t".to_owned(),
        issuer: "https://old.example/".to_owned(),
    };
    let management = api("m", "https://old.example/api/v2/");
    let admin = client("admin");
    let admin_grant = grant("ag", "admin", "https://old.example/api/v2/");
    store
        .bootstrap(&AdminBootstrap {
            tenant: &tenant,
            api: Some(&management),
            client: Some(&admin),
            grant: &admin_grant,
        })
        .await
        .expect("bootstrap");
    assert_eq!(store.tenant().await.expect("tenant"), Some(tenant.clone()));
    // A second bootstrap replaces the pair's grant and adds nothing else.
    store
        .bootstrap(&AdminBootstrap {
            tenant: &tenant,
            api: None,
            client: None,
            grant: &grant("ag2", "admin", "https://old.example/api/v2/"),
        })
        .await
        .expect("bootstrap again");
    assert_eq!(store.grant("ag").await.expect("read"), None);
    assert!(store.grant("ag2").await.expect("read").is_some());
    assert!(is_conflict(
        store
            .bootstrap(&AdminBootstrap {
                tenant: &tenant,
                api: None,
                client: Some(&admin),
                grant: &admin_grant,
            })
            .await
    ));

    // A new issuer moves the tenant, the Management API's identifier and its grants.
    let moved = Tenant {
        issuer: "https://new.example/".to_owned(),
        ..tenant
    };
    store
        .insert_api(&api("taken", "https://taken.example/api/v2/"))
        .await
        .expect("api");
    assert!(is_conflict(
        store
            .change_issuer(
                &moved,
                "https://old.example/api/v2/",
                "https://taken.example/api/v2/"
            )
            .await
    ));
    store
        .change_issuer(
            &moved,
            "https://old.example/api/v2/",
            "https://new.example/api/v2/",
        )
        .await
        .expect("change issuer");
    assert_eq!(store.tenant().await.expect("tenant"), Some(moved));
    assert_eq!(
        store.api("m").await.expect("read").map(|a| a.identifier),
        Some("https://new.example/api/v2/".to_owned())
    );
    assert_eq!(
        store
            .grant_for("admin", "https://new.example/api/v2/")
            .await
            .expect("read")
            .map(|g| g.id),
        Some("ag2".to_owned())
    );
    assert_eq!(
        store
            .grant_for("admin", "https://old.example/api/v2/")
            .await
            .expect("read"),
        None
    );
}

/// Every part of the contract, on one store.
async fn contract(store: &impl RecordStore) {
    clients_contract(store).await;
    apis_and_grants_contract(store).await;
    hooks_contract(store).await;
    keys_and_installation_contract(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sled_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract_and_feeds_every_write_to_the_change_log() {
    let postgres = TestPostgres::start();
    let url = postgres.create_database("hookd").await;
    let store = PgStore::connect(&url, 4, PostgresTimeouts::default())
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", postgres.log()));
    assert_eq!(store.revision().await.expect("revision"), 0);
    contract(&store).await;
    // Every successful write advanced the revision by one; refused ones did not.
    let revision = store.revision().await.expect("revision");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let logged: i64 = client
        .query_one("SELECT count(DISTINCT revision) FROM changes", &[])
        .await
        .expect("changes")
        .get(0);
    assert_eq!(logged, revision);
    assert!(revision > 30, "{revision} writes");
    let hook_changes: i64 = client
        .query_one(
            "SELECT count(*) FROM changes WHERE entity = 'hook' AND entity_id = 'h1'",
            &[],
        )
        .await
        .expect("changes")
        .get(0);
    assert!(hook_changes >= 3, "h1 was inserted, disabled and enabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enables_on_one_postgres_leave_exactly_one_hook_enabled() {
    let postgres = TestPostgres::start();
    let url = postgres.create_database("hookd").await;
    let connect = || PgStore::connect(&url, 2, PostgresTimeouts::default());
    // Two nodes, each with its own pool.
    let (a, b) = tokio::join!(connect(), connect());
    let (a, b) = (a.expect("node a"), b.expect("node b"));
    for n in 0..8u8 {
        a.insert_hook(
            &hook(&format!("h{n}"), &format!("hook-{n}"), false, &[n]),
            &[n],
        )
        .await
        .expect("insert");
    }
    for round in 0..10u8 {
        let (x, y) = (round % 8, (round + 3) % 8);
        let on_a = hook(&format!("h{x}"), &format!("hook-{x}"), true, &[x]);
        let on_b = hook(&format!("h{y}"), &format!("hook-{y}"), true, &[y]);
        let (first, second) = tokio::join!(a.update_hook(&on_a), b.update_hook(&on_b));
        first.expect("node a's enable");
        second.expect("node b's enable");
        let enabled: Vec<String> = a
            .hooks()
            .await
            .expect("hooks")
            .into_iter()
            .filter(|h| h.enabled)
            .map(|h| h.id)
            .collect();
        assert_eq!(enabled.len(), 1, "round {round}: {enabled:?}");
        assert!(
            enabled[0] == format!("h{x}") || enabled[0] == format!("h{y}"),
            "round {round}: {enabled:?}"
        );
    }
}
