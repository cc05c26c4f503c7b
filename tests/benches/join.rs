//! A node joining a database that already holds many applications: how long `prepare` takes
//! (connect, snapshot, startup lock, keys, hooks) and what the snapshot adds to the process's
//! resident memory, against a node on an empty database. `docs/BENCHMARKS.md` records:
//!
//!     cargo bench -p hookd-tests --bench join
//!
//! PostgreSQL is a cluster of the benchmark's own on 127.0.0.1; HOOKD_JOIN_CLIENTS sets how
//! many applications (each with a grant) the full database holds (default 10,000).
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

/// Starts a node on `url` in this process; returns how long `prepare` took and the node.
async fn join(url: &str, data: &std::path::Path) -> (Duration, hookd::app::Prepared) {
    let mut config = hookd::app::ServeConfig::new(data.to_owned(), "127.0.0.1:0".parse().unwrap());
    config.cache_dir = Some(hookd_tests::COMPILED_CACHE_DIR.into());
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let postgres = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let empty = postgres.create_database("hookd_empty").await;
        let full = postgres.create_database("hookd_full").await;
        // The full database: a first node makes the schema, the tenant and the API; then the
        // applications go in directly.
        {
            let (_, first) = join(&full, &dir.path().join("first")).await;
            let store = first.store.clone();
            let (api, _) = hookd::management::new_api_record(
                &hookd_tests::test_secret_box(),
                hookd::management::NewApi::new(AUDIENCE, "join", &["read"]),
            )
            .unwrap();
            hookd::store::RecordStore::insert_api(&store, &api)
                .await
                .unwrap();
        }
        let filling = Instant::now();
        fill(&full, clients).await;
        println!(
            "{clients} applications and grants written in {:.1} s",
            filling.elapsed().as_secs_f64()
        );

        let before_empty = rss_kib();
        let (empty_took, empty_node) = join(&empty, &dir.path().join("empty")).await;
        let after_empty = rss_kib();
        let before_full = rss_kib();
        let (full_took, full_node) = join(&full, &dir.path().join("full")).await;
        let after_full = rss_kib();
        println!("| database | join time | process RSS added by the node |");
        println!("|---|---|---|");
        println!(
            "| empty | {:.0} ms | {} MiB |",
            empty_took.as_secs_f64() * 1e3,
            after_empty.saturating_sub(before_empty) / 1024
        );
        println!(
            "| {clients} applications and grants | {:.0} ms | {} MiB |",
            full_took.as_secs_f64() * 1e3,
            after_full.saturating_sub(before_full) / 1024
        );
        drop((empty_node, full_node));
    });
}
