//! Token endpoint load run on loopback: tokens/s, p50/p99 latency and server CPU-µs per token
//! at 1, 16 and 64 connections, with no hook and with the seed Rust hook, next to the RS256
//! signing ceiling measured in the same run. `docs/BENCHMARKS.md` records the results of:
//!
//!     cargo bench -p hookd-tests --bench token_load
//!
//! The server is the real one (`hookd::app::prepare` + the hyper accept loop) on a
//! current-thread runtime whose thread is pinned to CPU 0; the load generator is a
//! current-thread runtime pinned to CPU 1 with one keep-alive HTTP/1.1 connection per
//! simulated client (closed loop, like wrk). Only 127.0.0.1 is contacted; every phase is
//! bounded in time. Settings: HOOKD_LOAD_SECONDS (measured seconds per cell, default 5),
//! HOOKD_LOAD_WARMUP (default 1).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "benchmark: a failed step aborts"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd_tests::{API, JS_SEED, SEED, seed};
use http_body_util::{BodyExt, Full};

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

/// RS256 signatures per second on the server's CPU, signing a message the size of a token's
/// header and payload with a key parsed once: the ceiling for the token endpoint.
fn rs256_ceiling(seconds: f64) -> f64 {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    let handle = std::thread::spawn(move || {
        pin_current_thread(SERVER_CPU);
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let message = vec![b'x'; 420];
        let rng = SystemRandom::new();
        let mut signature = vec![0; key.public_modulus_len()];
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed().as_secs_f64() < seconds {
            key.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
                .unwrap();
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

fn start_server(dir: std::path::PathBuf) -> RunningServer {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        pin_current_thread(SERVER_CPU);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut config = hookd::app::ServeConfig::new(dir, "127.0.0.1:0".parse().unwrap());
            config.cache_dir = Some(hookd_tests::COMPILED_CACHE_DIR.into());
            config.http.max_in_flight = 1024;
            let prepared = hookd::app::prepare(config).await.expect("server starts");
            ready_tx.send((prepared.addr, thread_id())).unwrap();
            prepared
                .server
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    let (addr, tid) = ready_rx.recv().unwrap();
    RunningServer {
        addr,
        tid,
        stop,
        thread,
    }
}

struct Cell {
    tokens_per_s: f64,
    p50: Duration,
    p99: Duration,
    cpu_us_per_token: f64,
    client_cpu_us_per_token: f64,
    errors: u64,
}

async fn connection_loop(
    addr: SocketAddr,
    body: Bytes,
    until: Instant,
    measure_from: Instant,
) -> (Vec<Duration>, u64) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < until {
        let request = http::Request::post("/oauth/token")
            .header("host", "127.0.0.1")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(body.clone()))
            .unwrap();
        let started = Instant::now();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let ok = response.status() == 200;
        response.into_body().collect().await.unwrap();
        if started >= measure_from {
            latencies.push(started.elapsed());
            errors += u64::from(!ok);
        }
    }
    (latencies, errors)
}

async fn measure(
    server: &RunningServer,
    body: &Bytes,
    connections: usize,
    warmup: Duration,
    seconds: Duration,
) -> Cell {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + seconds;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(connection_loop(
            server.addr,
            body.clone(),
            until,
            measure_from,
        ));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = thread_cpu_us(server.tid);
    let client_tid = thread_id();
    let client_before = thread_cpu_us(client_tid);
    let wall = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (mut some, failed) = joined.unwrap();
        latencies.append(&mut some);
        errors += failed;
    }
    let cpu = thread_cpu_us(server.tid) - cpu_before;
    let client_cpu = thread_cpu_us(client_tid) - client_before;
    let elapsed = wall.elapsed().as_secs_f64();
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Cell {
        tokens_per_s: latencies.len() as f64 / elapsed,
        p50: at(0.5),
        p99: at(0.99),
        cpu_us_per_token: cpu as f64 / latencies.len().max(1) as f64,
        client_cpu_us_per_token: client_cpu as f64 / latencies.len().max(1) as f64,
        errors,
    }
}

fn main() {
    let seconds: f64 = std::env::var("HOOKD_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let warmup: f64 = std::env::var("HOOKD_LOAD_WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let (seconds, warmup) = (
        Duration::from_secs_f64(seconds),
        Duration::from_secs_f64(warmup),
    );

    let ceiling = rs256_ceiling(3.0);
    println!("RS256 signing ceiling on CPU {SERVER_CPU}: {ceiling:.0} signatures/s");
    println!();
    println!(
        "| hook | connections | tokens/s | % of RS256 ceiling | p50 | p99 | server CPU µs/token | load generator CPU µs/token | non-200 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");

    pin_current_thread(CLIENT_CPU);
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut results = Vec::new();
    for (label, module, reuse) in [
        ("none", None, false),
        ("seed (Rust)", Some(SEED), false),
        ("seed (JavaScript)", Some(JS_SEED), false),
        ("seed (JavaScript, reused instances)", Some(JS_SEED), true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let seeded = seed(dir.path(), module);
        if reuse {
            let store = hookd::store::Store::open(dir.path()).unwrap();
            let mut hook = store.hooks().unwrap().remove(0);
            hook.reuse_instances = true;
            store.update_hook(&hook).unwrap();
            store.flush().unwrap();
        }
        let body = Bytes::from(hookd_tests::form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", &seeded.client_id),
            ("client_secret", &seeded.secret),
            ("audience", API),
        ]));
        let server = start_server(dir.path().to_owned());
        for connections in [1, 16, 64] {
            let cell = client.block_on(measure(&server, &body, connections, warmup, seconds));
            println!(
                "| {label} | {connections} | {:.0} | {:.0}% | {:.2} ms | {:.2} ms | {:.0} | {:.0} | {} |",
                cell.tokens_per_s,
                100.0 * cell.tokens_per_s / ceiling,
                cell.p50.as_secs_f64() * 1e3,
                cell.p99.as_secs_f64() * 1e3,
                cell.cpu_us_per_token,
                cell.client_cpu_us_per_token,
                cell.errors,
            );
            results.push((label, connections, cell.tokens_per_s));
        }
        let _ = server.stop.send(());
        server.thread.join().unwrap();
    }
    println!();
    for connections in [1, 16, 64] {
        let rate = |label| {
            results
                .iter()
                .find(|r| r.0 == label && r.1 == connections)
                .map_or(0.0, |r| r.2)
        };
        println!(
            "seed hook / no hook at {connections} connections: Rust {:.1}%, JavaScript {:.1}%, JavaScript with reused instances {:.1}%",
            100.0 * rate("seed (Rust)") / rate("none").max(1.0),
            100.0 * rate("seed (JavaScript)") / rate("none").max(1.0),
            100.0 * rate("seed (JavaScript, reused instances)") / rate("none").max(1.0)
        );
    }
    println!(
        "peak RSS of the benchmark process (server + load generator): {} MiB",
        peak_rss_kib() / 1024
    );
}
