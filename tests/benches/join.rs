//! A node joining a database that already holds many applications and JavaScript hooks: how
//! long `prepare` takes (connect, snapshot, startup lock, keys, the enabled hook) and what it
//! adds to the process's resident memory, against a node on an empty database, with the
//! compiled-artifact cache warm (the enabled hook compiled before, as by the node that deployed
//! it) and cold. `docs/BENCHMARKS.md` records:
//!
//!     cargo bench -p hookd-tests --bench join
//!
//! PostgreSQL is a cluster of the benchmark's own on 127.0.0.1; HOOKD_JOIN_CLIENTS sets how
//! many applications (each with a grant) the full database holds (default 10,000), and
//! HOOKD_JOIN_HOOKS how many JavaScript hooks (default 10, the last one enabled: one hook per
//! trigger runs). Each hook is the seed JavaScript hook with a custom section of its own, so
//! each is a distinct module.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "benchmark: a failed step aborts"
)]

use std::time::{Duration, Instant};

use hookd::management::new_client_record;
use hookd::model::ClientGrant;
use hookd::secrets::SecretHasher;
use hookd_tests::postgres::TestPostgres;
use sha2::Digest as _;

const AUDIENCE: &str = "https://api.join.test/";

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A record as the store keeps it: the versioned envelope around the record's fields.
fn envelope(mut value: serde_json::Value) -> String {
    value
        .as_object_mut()
        .unwrap()
        .insert("version".to_owned(), "1".into());
    value.to_string()
}

/// Adds `count` applications, each granted [`AUDIENCE`], straight into the database (a node
/// has made the schema and the API first).
async fn fill(url: &str, count: usize) {
    let (mut db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let hasher = SecretHasher::new(b"join-benchmark");
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut clients = Vec::new();
        let mut grants = Vec::new();
        for n in chunk {
            let id = format!("client-{n:06}");
            let client = new_client_record(
                &hasher,
                &format!("worker {n}"),
                [("tier".to_owned(), "gold".to_owned())].into(),
                &id,
                "a-secret-of-enough-length",
            )
            .unwrap();
            let grant = ClientGrant {
                id: format!("grant-{n:06}"),
                client_id: id.clone(),
                audience: AUDIENCE.to_owned(),
                scope: vec!["read".to_owned()],
            };
            clients.push((id, envelope(serde_json::to_value(&client).unwrap())));
            grants.push((
                grant.id.clone(),
                grant.client_id.clone(),
                envelope(serde_json::to_value(&grant).unwrap()),
            ));
        }
        let transaction = db.transaction().await.unwrap();
        for (id, record) in &clients {
            transaction
                .execute(
                    "INSERT INTO clients (client_id, record) VALUES ($1, $2::text::jsonb)",
                    &[id, record],
                )
                .await
                .unwrap();
        }
        for (id, client_id, record) in &grants {
            transaction
                .execute(
                    "INSERT INTO grants (id, client_id, audience, record)
                     VALUES ($1, $2, $3, $4::text::jsonb)",
                    &[id, client_id, &AUDIENCE, record],
                )
                .await
                .unwrap();
        }
        transaction.commit().await.unwrap();
    }
}

/// `component` with a custom section named `hookd-bench` holding `n` appended: the same code,
/// a module of its own (custom sections may come anywhere in a component).
fn distinct(component: &[u8], n: usize) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"hookd-bench";
    let payload = n.to_le_bytes();
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(&payload);
    let mut module = component.to_vec();
    module.push(0);
    leb128(content.len(), &mut module);
    module.extend_from_slice(&content);
    module
}

/// Adds `count` JavaScript hooks to the database at `url`, the last one enabled, validated and
/// compiled (into the artifact cache in `cache`) as a deploying node does; the others are
/// written as deploying them would write them.
async fn deploy_hooks(store: &hookd::store::Store, cache: &std::path::Path, count: usize) {
    let engine = hookd::hooks::HookEngine::new(hookd::hooks::EngineSettings {
        cache: Some(hookd::app::artifact_cache(
            cache.to_owned(),
            &hookd_tests::test_secret_box(),
        )),
        ..Default::default()
    })
    .unwrap();
    let seed = hookd_tests::wasm(hookd_tests::JS_SEED);
    let point = hookd::hooks::ExtensibilityPoint::CredentialsExchange;
    let enabled = hookd::management::create_hook(
        store,
        &engine,
        "js-hook-enabled",
        point,
        &distinct(&seed, count),
        true,
        1,
    )
    .await
    .unwrap();
    for n in 1..count {
        let module = distinct(&seed, n);
        let sha256 = hex::encode(sha2::Sha256::digest(&module));
        let mut hook = enabled.clone();
        hook.id = format!("hook-bench-{n:02}");
        hook.name = format!("js-hook-{n:02}");
        hook.enabled = false;
        hook.versions[0].sha256 = sha256.clone();
        hook.versions[0].size = module.len() as u64;
        hook.active_version = Some(sha256);
        hookd::store::RecordStore::insert_hook(store, &hook, &module)
            .await
            .unwrap();
    }
}

/// Starts a node on `url` in this process, with its compiled-artifact cache in `cache`;
/// returns how long `prepare` took and the node.
async fn join(
    url: &str,
    data: &std::path::Path,
    cache: &std::path::Path,
) -> (Duration, hookd::app::Prepared) {
    let mut config = hookd::app::ServeConfig::new(data.to_owned(), "127.0.0.1:0".parse().unwrap());
    config.cache_dir = Some(cache.to_owned());
    config.secrets_key = Some(hookd_tests::TEST_SECRETS_KEY.to_owned());
    config.database = Some(url.to_owned());
    config.issuer = Some("https://join.test/".to_owned());
    let started = Instant::now();
    let prepared = hookd::app::prepare(config).await.expect("the node starts");
    (started.elapsed(), prepared)
}

fn main() {
    let clients: usize = std::env::var("HOOKD_JOIN_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let hooks: usize = std::env::var("HOOKD_JOIN_HOOKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let postgres = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (warm_cache, cold_cache) = (dir.path().join("warm-cache"), dir.path().join("cold-cache"));
    runtime.block_on(async {
        let empty = postgres.create_database("hookd_empty").await;
        let full = postgres.create_database("hookd_full").await;
        // The full database: a first node makes the schema, the tenant and the API; the hooks
        // are deployed as through it (compiling the enabled one into the warm cache); then the
        // applications go in directly.
        {
            let (_, first) = join(&full, &dir.path().join("first"), &warm_cache).await;
            let store = first.store.clone();
            let (api, _) = hookd::management::new_api_record(
                &hookd_tests::test_secret_box(),
                hookd::management::NewApi::new(AUDIENCE, "join", &["read"]),
            )
            .unwrap();
            hookd::store::RecordStore::insert_api(&store, &api)
                .await
                .unwrap();
            let deploying = Instant::now();
            deploy_hooks(&store, &warm_cache, hooks).await;
            println!(
                "{hooks} JavaScript hooks deployed (one compiled) in {:.1} s",
                deploying.elapsed().as_secs_f64()
            );
        }
        let filling = Instant::now();
        fill(&full, clients).await;
        println!(
            "{clients} applications and grants written in {:.1} s",
            filling.elapsed().as_secs_f64()
        );

        let mut rows = Vec::new();
        let mut nodes = Vec::new();
        for (label, url, cache) in [
            ("empty".to_owned(), &empty, &warm_cache),
            (
                format!("{clients} applications and grants, {hooks} JavaScript hooks (1 enabled), artifact cache warm"),
                &full,
                &warm_cache,
            ),
            (
                "the same, artifact cache cold (the enabled hook compiles)".to_owned(),
                &full,
                &cold_cache,
            ),
        ] {
            let before = rss_kib();
            let (took, node) = join(url, &dir.path().join(format!("node-{}", nodes.len())), cache).await;
            let added = rss_kib().saturating_sub(before) / 1024;
            rows.push(format!("| {label} | {:.0} ms | {added} MiB |", took.as_secs_f64() * 1e3));
            nodes.push(node);
        }
        println!("| database | join time | process RSS added by the node |");
        println!("|---|---|---|");
        for row in rows {
            println!("{row}");
        }
        drop(nodes);
    });
}
