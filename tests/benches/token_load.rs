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

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd::model::SigningAlg;
use hookd_tests::{API, HOSTILE, JS_SEED, SEED, seed};

const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

fn pin_current_thread(cpu: usize) {
    // SAFETY: `cpu_set_t` is plain data; sched_setaffinity(0, ..) only affects this thread.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("warning: could not pin to CPU {cpu}; results are unpinned");
        }
    }
}

fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::gettid() as i64
    }
}

/// utime + stime of one thread of this process, in microseconds.
fn thread_cpu_us(tid: i64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // After `(comm)` come field 3 (state), 4, ...: utime and stime (fields 14 and 15) are at
    // indices 11 and 12. Index the raw fields: some (tpgid) can be -1.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (field(11) + field(12)) * 1_000_000 / ticks
}

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

struct RunningServer {
    addr: SocketAddr,
    tid: i64,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

fn start_server(dir: std::path::PathBuf, database: Option<String>) -> RunningServer {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Named, so a profile can tell the server's samples from the load generator's.
    let thread = std::thread::Builder::new()
        .name("hookd-server".to_owned())
        .spawn(move || {
            pin_current_thread(SERVER_CPU);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut config = hookd::app::ServeConfig::new(dir, "127.0.0.1:0".parse().unwrap());
                config.cache_dir = Some(hookd_tests::COMPILED_CACHE_DIR.into());
                config.secrets_key = Some(hookd_tests::TEST_SECRETS_KEY.to_owned());
                config.http.max_in_flight = 1024;
                config.database = database;
                let prepared = hookd::app::prepare(config).await.expect("server starts");
                ready_tx.send((prepared.addr, thread_id())).unwrap();
                prepared
                    .server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })
        .unwrap();
    let (addr, tid) = ready_rx.recv().unwrap();
    RunningServer {
        addr,
        tid,
        stop,
        thread,
    }
}

/// What one measured stretch of load on one server gave.
#[derive(Default)]
struct Sample {
    latencies: Vec<Duration>,
    seconds: f64,
    server_cpu_us: u64,
    client_cpu_us: u64,
    errors: u64,
}

impl Sample {
    fn add(&mut self, mut other: Sample) {
        self.latencies.append(&mut other.latencies);
        self.seconds += other.seconds;
        self.server_cpu_us += other.server_cpu_us;
        self.client_cpu_us += other.client_cpu_us;
        self.errors += other.errors;
    }

    fn tokens_per_s(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        self.latencies[((self.latencies.len() - 1) as f64 * p).round() as usize]
    }

    fn per_token(&self, micros: u64) -> f64 {
        micros as f64 / self.latencies.len().max(1) as f64
    }
}

/// Reads one HTTP/1.1 response from `stream` into `buffer`; returns whether it was a 200.
/// Enough of HTTP for this server's responses (status line, `Content-Length`, no chunking),
/// like wrk's parser: the load generator must cost the shared CPUs as little as possible.
async fn read_response(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> bool {
    use tokio::io::AsyncReadExt;
    buffer.clear();
    let mut expected = None;
    loop {
        if expected.is_none()
            && let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = std::str::from_utf8(&buffer[..end]).expect("ASCII head");
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("Content-Length");
            expected = Some(end + 4 + length);
        }
        if let Some(total) = expected
            && buffer.len() >= total
        {
            assert_eq!(buffer.len(), total, "closed loop: one response at a time");
            return buffer.starts_with(b"HTTP/1.1 200 ");
        }
        let read = stream.read_buf(buffer).await.expect("read");
        assert!(read > 0, "server closed the connection");
    }
}

async fn connection_loop(
    addr: SocketAddr,
    request: Bytes,
    until: Instant,
    measure_from: Instant,
) -> (Vec<Duration>, u64) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buffer = Vec::with_capacity(8 << 10);
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < until {
        let started = Instant::now();
        stream.write_all(&request).await.unwrap();
        let ok = read_response(&mut stream, &mut buffer).await;
        if started >= measure_from {
            latencies.push(started.elapsed());
            errors += u64::from(!ok);
        }
    }
    (latencies, errors)
}

async fn measure(
    server: &RunningServer,
    request: &Bytes,
    connections: usize,
    warmup: Duration,
    seconds: Duration,
) -> Sample {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + seconds;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(connection_loop(
            server.addr,
            request.clone(),
            until,
            measure_from,
        ));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = thread_cpu_us(server.tid);
    let client_tid = thread_id();
    let client_before = thread_cpu_us(client_tid);
    let wall = Instant::now();
    let mut sample = Sample::default();
    while let Some(joined) = tasks.join_next().await {
        let (mut some, failed) = joined.unwrap();
        sample.latencies.append(&mut some);
        sample.errors += failed;
    }
    sample.server_cpu_us = thread_cpu_us(server.tid) - cpu_before;
    sample.client_cpu_us = thread_cpu_us(client_tid) - client_before;
    sample.seconds = wall.elapsed().as_secs_f64();
    sample
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
    let body = hookd_tests::form_body(&[
        ("grant_type", "client_credentials"),
        ("client_id", &seeded.client_id),
        ("client_secret", &seeded.secret),
        ("audience", API),
    ]);
    Bytes::from(format!(
        "POST /oauth/token HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
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
    let setting = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(default)
    };
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
                let sample = client.block_on(measure(
                    server,
                    &requests[index],
                    connections,
                    warmup,
                    stretch,
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
