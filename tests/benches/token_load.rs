//! Token endpoint load run on loopback: tokens/s, p50/p99 latency and server CPU-µs per token
//! at 1, 16 and 64 connections with no hook and the seed hook in Rust and in JavaScript (each
//! with fresh and with reused instances), all RS256, the Rust seed with a 10 % canary beside it,
//! no hook and the Rust seed on PostgreSQL (a cluster the benchmark starts) instead of sled,
//! and with no hook on ES256; next to the RS256 and ES256 signing ceilings measured in the
//! same run. `docs/BENCHMARKS.md` records the results of:
//!
//!     cargo bench -p hookd-tests --bench token_load
//!
//! Each scenario's server is the real one (`hookd::app::prepare` + the hyper accept loop) on
//! a current-thread runtime whose thread is pinned to CPU 0; all of them start first, and each
//! cell is measured in short stretches that alternate between the scenarios, so the machine's
//! drift hits them alike and the ratios between them hold. The load generator is a
//! current-thread runtime pinned to CPU 1 with one keep-alive HTTP/1.1 connection per
//! simulated client (closed loop, like wrk), sending a prepared request and reading just the
//! status line and `Content-Length`, so it takes as little of the shared CPUs as it can.
//! Only 127.0.0.1 is contacted; every phase is bounded in time. Settings: HOOKD_LOAD_SECONDS
//! (measured seconds per cell, default 5), HOOKD_LOAD_WARMUP (default 1), HOOKD_LOAD_ROUNDS
//! (stretches per cell, default 5), HOOKD_LOAD_SCENARIOS (labels separated by `;`).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "benchmark: a failed step aborts"
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd::model::SigningAlg;
use hookd_tests::load::{
    self, RunningServer, Sample, pin_current_thread, start_server, thread_cpu_us,
};
use hookd_tests::{API, HOSTILE, JS_SEED, SEED, seed};

use hookd_tests::load::{CLIENT_CPU, SERVER_CPU};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Signatures per second on the server's CPU, signing a message the size of a token's header
/// and payload with a key parsed once: the ceiling for the token endpoint with that algorithm.
fn signing_ceiling(alg: hookd::model::SigningAlg, seconds: f64) -> f64 {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    };
    let handle = std::thread::spawn(move || {
        pin_current_thread(SERVER_CPU);
        let message = vec![b'x'; 420];
        let rng = SystemRandom::new();
        let mut sign: Box<dyn FnMut()> = match alg {
            hookd::model::SigningAlg::ES256 => {
                let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
                Box::new(move || {
                    std::hint::black_box(key.sign(&rng, &message).unwrap());
                })
            }
            _ => {
                let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let mut signature = vec![0; key.public_modulus_len()];
                Box::new(move || {
                    key.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
                        .unwrap();
                })
            }
        };
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed().as_secs_f64() < seconds {
            sign();
            count += 1;
        }
        count as f64 / started.elapsed().as_secs_f64()
    });
    handle.join().unwrap()
}

/// One load scenario: which hook is enabled, whether it reuses instances, how tokens are signed.
struct Scenario {
    label: &'static str,
    module: Option<&'static str>,
    reuse_instances: bool,
    alg: SigningAlg,
    /// A second version (the hostile guest's echo) as a 10 % canary beside `module`.
    canary: bool,
    /// The store is PostgreSQL (a cluster the benchmark starts) instead of sled.
    postgres: bool,
}

const SCENARIOS: [Scenario; 9] = [
    Scenario {
        label: "none",
        module: None,
        reuse_instances: false,
        alg: SigningAlg::RS256,
        canary: false,
        postgres: false,
    },
    Scenario {
        label: "seed (Rust)",
        module: Some(SEED),
        reuse_instances: false,
        alg: SigningAlg::RS256,
        canary: false,
        postgres: false,
    },
    Scenario {
        label: "seed (Rust, reused instances)",
        module: Some(SEED),
        reuse_instances: true,
        alg: SigningAlg::RS256,
        canary: false,
        postgres: false,
    },
    Scenario {
        label: "seed (JavaScript)",
        module: Some(JS_SEED),
        reuse_instances: false,
        alg: SigningAlg::RS256,
        canary: false,
        postgres: false,
    },
    Scenario {
        label: "seed (JavaScript, reused instances)",
        module: Some(JS_SEED),
        reuse_instances: true,
        alg: SigningAlg::RS256,
        canary: false,
        postgres: false,
    },
    Scenario {
        label: "none (ES256)",
        module: None,
        reuse_instances: false,
        alg: SigningAlg::ES256,
        canary: false,
        postgres: false,
    },
    Scenario {
        label: "seed (Rust), 10 % canary",
        module: Some(SEED),
        reuse_instances: false,
        alg: SigningAlg::RS256,
        canary: true,
        postgres: false,
    },
    Scenario {
        label: "none (PostgreSQL)",
        module: None,
        reuse_instances: false,
        alg: SigningAlg::RS256,
        canary: false,
        postgres: true,
    },
    Scenario {
        label: "seed (Rust, PostgreSQL)",
        module: Some(SEED),
        reuse_instances: false,
        alg: SigningAlg::RS256,
        canary: false,
        postgres: true,
    },
];

/// Seeds a data directory for `scenario`; returns the full HTTP request a client sends.
/// Seeds database `url` as [`seed`] seeds a data directory: the client, the API, the grant
/// and the hook `module`, if any.
fn seed_postgres(url: &str, module: Option<&str>) -> hookd_tests::Seeded {
    use hookd::management::{self, NewApi};
    use hookd::store::postgres::{PgStore, PostgresTimeouts};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = PgStore::connect(url, 2, PostgresTimeouts::default())
            .await
            .unwrap();
        let secret_box = hookd_tests::test_secret_box();
        let hasher = hookd::app::client_secret_hasher(&store, &secret_box)
            .await
            .unwrap();
        let metadata = [("tier".to_owned(), "gold".to_owned())].into();
        let (client, secret) = management::create_client(&store, &hasher, "reporting", metadata)
            .await
            .unwrap();
        management::create_api(
            &store,
            &secret_box,
            NewApi::new(API, "Reports", &["read:reports", "write:reports", "admin"]),
        )
        .await
        .unwrap();
        management::create_grant(
            &store,
            &client.client_id,
            API,
            &["read:reports", "write:reports"],
        )
        .await
        .unwrap();
        if let Some(path) = module {
            management::create_hook(
                &store,
                &hookd_tests::cached_engine(),
                "under-test",
                hookd::hooks::ExtensibilityPoint::CredentialsExchange,
                &hookd_tests::wasm(path),
                true,
                hookd::clock::unix_now(),
            )
            .await
            .unwrap();
        }
        hookd_tests::Seeded {
            client_id: client.client_id,
            secret,
        }
    })
}

/// The token request a client of `seeded` sends.
fn token_request(seeded: &hookd_tests::Seeded) -> Bytes {
    load::token_request(&seeded.client_id, &seeded.secret, API)
}

fn prepare(dir: &std::path::Path, scenario: &Scenario, database: Option<&str>) -> Bytes {
    if let Some(url) = database {
        return token_request(&seed_postgres(url, scenario.module));
    }
    let seeded = seed(dir, scenario.module);
    let store = hookd::store::SledStore::open(dir).unwrap();
    if scenario.reuse_instances {
        let mut hook = store.hooks().unwrap().remove(0);
        hook.reuse_instances = true;
        store.update_hook(&hook).unwrap();
    }
    if scenario.canary {
        // A 10 % canary of another version beside the active one: every request pays for
        // choosing the version and for the verdict; the load client runs the canary only if
        // it falls in the 10 %.
        let mut hook = store.hooks().unwrap().remove(0);
        let active = hook.active_version.clone().unwrap();
        let module = hookd_tests::wasm(HOSTILE);
        let sha = hookd_tests::load(
            &hookd_tests::cached_engine(),
            HOSTILE,
            hookd::hooks::HookLimits::default(),
        )
        .sha256;
        hook.versions.push(hookd::model::HookVersion {
            sha256: sha.clone(),
            size: module.len() as u64,
            uploaded_at: 0,
        });
        store.add_hook_version(&hook, &module).unwrap();
        hook.active_version = Some(active);
        hook.canary = Some(hookd::model::Canary {
            version: sha,
            percent: 10,
            rule: hookd::model::CanaryRule::default(),
            started_at: 0,
            state: hookd::model::CanaryState::Running,
        });
        store.update_hook(&hook).unwrap();
        let bucket = hookd::registry::canary::client_bucket(&hook.id, &seeded.client_id);
        println!(
            "{}: the load client is in bucket {bucket}, so it runs the {}",
            scenario.label,
            if bucket < 10 {
                "canary"
            } else {
                "active version"
            }
        );
    }
    if scenario.alg != SigningAlg::RS256 {
        // The asymmetric algorithms need no secret of the API's own: a plain record change.
        assert_ne!(
            scenario.alg,
            SigningAlg::HS256,
            "HS256 needs a signing secret"
        );
        let mut api = store.api_by_identifier(API).unwrap().unwrap();
        api.signing_alg = scenario.alg;
        store.update_api(&api).unwrap();
    }
    store.flush().unwrap();
    token_request(&seeded)
}

fn main() {
    let setting = load::setting;
    let seconds = setting("HOOKD_LOAD_SECONDS", 5.0);
    let warmup = setting("HOOKD_LOAD_WARMUP", 1.0);
    let rounds = setting("HOOKD_LOAD_ROUNDS", 5.0).max(1.0) as u32;
    // `HOOKD_LOAD_SCENARIOS="none;seed (Rust)"` runs only those (by label).
    let only: Option<Vec<String>> = std::env::var("HOOKD_LOAD_SCENARIOS")
        .ok()
        .map(|list| list.split(';').map(|s| s.trim().to_owned()).collect());
    // Each cell is measured in `rounds` stretches, interleaved with the other scenarios' at
    // the same connection count, so drift in the machine's speed hits every scenario alike.
    let stretch = Duration::from_secs_f64(seconds / f64::from(rounds));
    let first_warmup = Duration::from_secs_f64(warmup);
    let later_warmup = Duration::from_secs_f64((warmup / f64::from(rounds)).min(0.2));

    let rs256 = signing_ceiling(SigningAlg::RS256, 3.0);
    let es256 = signing_ceiling(SigningAlg::ES256, 3.0);
    println!("signing ceiling on CPU {SERVER_CPU}: RS256 {rs256:.0}/s, ES256 {es256:.0}/s");
    println!("{rounds} interleaved stretches of {stretch:?} per cell");
    println!();

    let scenarios: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| {
            only.as_ref()
                .is_none_or(|only| only.iter().any(|o| o == s.label))
        })
        .collect();
    let dirs: Vec<_> = scenarios
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    // One PostgreSQL for the scenarios on it (a database each), unpinned: the token path does
    // not touch it, only each node's change feed does, once a second.
    let postgres = scenarios
        .iter()
        .any(|s| s.postgres)
        .then(hookd_tests::postgres::TestPostgres::start);
    let databases: Vec<Option<String>> = scenarios
        .iter()
        .enumerate()
        .map(|(index, scenario)| {
            let postgres = postgres.as_ref().filter(|_| scenario.postgres)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            Some(runtime.block_on(postgres.create_database(&format!("scenario{index}"))))
        })
        .collect();
    let requests: Vec<Bytes> = scenarios
        .iter()
        .zip(&dirs)
        .zip(&databases)
        .map(|((scenario, dir), database)| prepare(dir.path(), scenario, database.as_deref()))
        .collect();
    let servers: Vec<RunningServer> = dirs
        .iter()
        .zip(&databases)
        .map(|(dir, database)| start_server(dir.path().to_owned(), database.clone()))
        .collect();

    pin_current_thread(CLIENT_CPU);
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| hook | alg | connections | tokens/s | % of signing ceiling | p50 | p99 | server CPU µs/token | load generator CPU µs/token | non-200 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for connections in [1, 16, 64] {
        let mut samples: Vec<Sample> = scenarios.iter().map(|_| Sample::default()).collect();
        for round in 0..rounds {
            let warmup = if round == 0 {
                first_warmup
            } else {
                later_warmup
            };
            for (index, server) in servers.iter().enumerate() {
                let tid = server.tid;
                let sample = client.block_on(load::measure(
                    server.addr,
                    &requests[index],
                    connections,
                    warmup,
                    stretch,
                    &|| thread_cpu_us(tid),
                ));
                samples[index].add(sample);
            }
        }
        for (scenario, mut sample) in scenarios.iter().zip(samples) {
            let ceiling = if scenario.alg == SigningAlg::ES256 {
                es256
            } else {
                rs256
            };
            println!(
                "| {} | {:?} | {connections} | {:.0} | {:.0}% | {:.2} ms | {:.2} ms | {:.0} | {:.0} | {} |",
                scenario.label,
                scenario.alg,
                sample.tokens_per_s(),
                100.0 * sample.tokens_per_s() / ceiling,
                sample.percentile(0.5).as_secs_f64() * 1e3,
                sample.percentile(0.99).as_secs_f64() * 1e3,
                sample.per_token(sample.server_cpu_us),
                sample.per_token(sample.client_cpu_us),
                sample.errors,
            );
            results.push((scenario.label, connections, sample.tokens_per_s()));
        }
    }
    for server in servers {
        let _ = server.stop.send(());
        server.thread.join().unwrap();
    }
    println!();
    for connections in [1, 16, 64] {
        let rate = |label| {
            results
                .iter()
                .find(|r| r.0 == label && r.1 == connections)
                .map(|r| r.2)
        };
        let Some(none) = rate("none") else { break };
        // Only the scenarios that ran (`HOOKD_LOAD_SCENARIOS` may leave some out).
        let ratios: Vec<String> = [
            ("Rust", "seed (Rust)"),
            (
                "Rust with reused instances",
                "seed (Rust, reused instances)",
            ),
            ("JavaScript", "seed (JavaScript)"),
            (
                "JavaScript with reused instances",
                "seed (JavaScript, reused instances)",
            ),
        ]
        .into_iter()
        .filter_map(|(name, label)| Some(format!("{name} {:.1}%", 100.0 * rate(label)? / none)))
        .collect();
        if !ratios.is_empty() {
            println!(
                "seed hook / no hook at {connections} connections: {}",
                ratios.join(", ")
            );
        }
        for (on_postgres, on_sled) in [
            ("none (PostgreSQL)", "none"),
            ("seed (Rust, PostgreSQL)", "seed (Rust)"),
        ] {
            if let (Some(postgres), Some(sled)) = (rate(on_postgres), rate(on_sled)) {
                println!(
                    "{on_postgres} / {on_sled} (sled) at {connections} connections: {:.1}%",
                    100.0 * postgres / sled
                );
            }
        }
        if let (Some(canary), Some(seed)) = (rate("seed (Rust), 10 % canary"), rate("seed (Rust)"))
        {
            println!(
                "seed with a 10 % canary / seed alone at {connections} connections: {:.1}%",
                100.0 * canary / seed
            );
        }
    }
    println!(
        "peak RSS of the benchmark process (every scenario's server at once + load generator): {} MiB",
        peak_rss_kib() / 1024
    );
}
