//! hookd side by side with a peer: node-oidc-provider 9 (npm `oidc-provider`, installed by the
//! benchmark from `tests/benches/peer/package-lock.json`), `extraTokenClaims` adding the claim
//! the seed hook adds, against hookd with the seed Rust hook enabled; RS256 and ES256 at 16 and
//! 64 connections. `docs/BENCHMARKS.md` records the results of:
//!
//!     cargo bench -p hookd-tests --bench peer
//!
//! Both servers run on CPU 0 (hookd on a current-thread runtime pinned there, the peer's whole
//! Node process under `taskset -c 0`); the load generator (`hookd_tests::load`, a closed loop
//! like wrk) runs on CPU 1. Every cell is measured in stretches that alternate between the two
//! servers, after a warm-up of each (Node's JIT needs one), so drift in the machine hits both
//! alike: only the ratios in one run count. Both answer the same `client_secret_post` request
//! body with a JWT access token carrying `https://foo.com/claim`. Only 127.0.0.1 is contacted;
//! every phase is bounded. Settings: HOOKD_PEER_SECONDS (measured seconds per cell and server,
//! default 9), HOOKD_PEER_ROUNDS (stretches per cell, default 3), HOOKD_PEER_WARMUP (seconds of
//! warm-up per server before the first cell, default 5).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "benchmark: a failed step aborts"
)]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use hookd::model::SigningAlg;
use hookd_tests::load::{self, CLIENT_CPU, SERVER_CPU, Sample, pin_current_thread};
use hookd_tests::{API, SEED, seed};

/// The peer's client; its secret is as long as hookd's generated ones.
const PEER_CLIENT: &str = "peer-client";
const PEER_SECRET: &str = "peer-secret-0123456789abcdefghijklmnopqrstuv";

/// `npm ci` in the peer's directory unless it already installed this lockfile.
fn install_peer(dir: &Path) {
    let lockfile = std::fs::read(dir.join("package-lock.json")).unwrap();
    let installed_from = dir.join("node_modules/.hookd-installed-from");
    if std::fs::read(&installed_from).is_ok_and(|installed| installed == lockfile) {
        return;
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(dir)
        .status()
        .expect("run npm (Node.js and npm are needed for the peer)");
    assert!(status.success(), "npm ci for the peer failed");
    std::fs::write(installed_from, lockfile).unwrap();
}

/// The peer, killed when dropped.
struct Peer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap()
}

/// Starts the peer signing with `alg`, pinned to [`SERVER_CPU`], and waits until it listens.
fn start_peer(dir: &Path, alg: SigningAlg) -> Peer {
    let port = free_port();
    let mut child = Command::new("taskset")
        .args(["-c", &SERVER_CPU.to_string(), "node", "server.mjs"])
        .current_dir(dir)
        .env("NODE_ENV", "production")
        .env("PEER_PORT", port.to_string())
        .env("PEER_ALG", format!("{alg:?}"))
        .env("PEER_AUDIENCE", API)
        .env("PEER_CLIENT_ID", PEER_CLIENT)
        .env("PEER_CLIENT_SECRET", PEER_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the peer (taskset and node)");
    let stdout = child.stdout.take().unwrap();
    let (ready, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening") {
                let _ = ready.send(());
            }
        }
    });
    listening
        .recv_timeout(Duration::from_secs(30))
        .expect("the peer listens within 30 s");
    Peer {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// hookd with the seed Rust hook, its API signing with `alg`; returns the server and the
/// token request its client sends.
fn start_hookd(dir: &Path, alg: SigningAlg) -> (load::RunningServer, Bytes) {
    let seeded = seed(dir, Some(SEED));
    let store = hookd::store::SledStore::open(dir).unwrap();
    let mut api = store.api_by_identifier(API).unwrap().unwrap();
    api.signing_alg = alg;
    store.update_api(&api).unwrap();
    store.flush().unwrap();
    drop(store);
    let request = load::token_request(&seeded.client_id, &seeded.secret, API);
    (load::start_server(dir.to_owned(), None), request)
}

/// One answer from `addr` to `request`, checked: 200 and a JWT with the seed's claim.
fn check_answer(runtime: &tokio::runtime::Runtime, addr: SocketAddr, request: &Bytes) {
    let body = runtime.block_on(async {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut buffer = Vec::new();
        assert!(
            load::read_response(&mut stream, &mut buffer).await,
            "{addr} answers 200: {}",
            String::from_utf8_lossy(&buffer)
        );
        let text = String::from_utf8(buffer).unwrap();
        text.split_once("\r\n\r\n").unwrap().1.to_owned()
    });
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = json["access_token"].as_str().expect("an access token");
    assert_eq!(
        hookd_tests::payload(token)["https://foo.com/claim"],
        "bar",
        "{addr}'s token carries the claim"
    );
}

fn main() {
    let setting = load::setting;
    let seconds = setting("HOOKD_PEER_SECONDS", 9.0);
    let rounds = setting("HOOKD_PEER_ROUNDS", 3.0).max(1.0) as u32;
    let warmup = Duration::from_secs_f64(setting("HOOKD_PEER_WARMUP", 5.0));
    let stretch = Duration::from_secs_f64(seconds / f64::from(rounds));
    let settle = Duration::from_millis(200);

    let peer_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer");
    install_peer(&peer_dir);
    let peer_request = load::token_request(PEER_CLIENT, PEER_SECRET, API);
    let algs = [SigningAlg::RS256, SigningAlg::ES256];
    let dirs: Vec<_> = algs.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let hookds: Vec<_> = algs
        .iter()
        .zip(&dirs)
        .map(|(alg, dir)| start_hookd(dir.path(), *alg))
        .collect();
    let peers: Vec<Peer> = algs.iter().map(|alg| start_peer(&peer_dir, *alg)).collect();

    pin_current_thread(CLIENT_CPU);
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for ((server, request), peer) in hookds.iter().zip(&peers) {
        check_answer(&client, server.addr, request);
        check_answer(&client, peer.addr, &peer_request);
    }
    println!(
        "{rounds} interleaved stretches of {stretch:?} per cell and server, after {warmup:?} of warm-up"
    );
    println!();
    println!(
        "| alg | connections | hookd tokens/s | peer tokens/s | ratio | hookd p50 / p99 | peer p50 / p99 | p99 ratio | server CPU µs/token, hookd / peer | non-200 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (((server, request), peer), alg) in hookds.iter().zip(&peers).zip(algs) {
        let tid = server.tid;
        let hookd_cpu = move || load::thread_cpu_us(tid);
        let pid = peer.child.id();
        let peer_cpu = move || load::process_cpu_us(pid);
        // Warm-up, discarded: Node's JIT, hookd's instance pool.
        client.block_on(load::measure(
            server.addr,
            request,
            16,
            warmup,
            settle,
            &hookd_cpu,
        ));
        client.block_on(load::measure(
            peer.addr,
            &peer_request,
            16,
            warmup,
            settle,
            &peer_cpu,
        ));
        for connections in [16, 64] {
            let (mut ours, mut theirs) = (Sample::default(), Sample::default());
            for _ in 0..rounds {
                ours.add(client.block_on(load::measure(
                    server.addr,
                    request,
                    connections,
                    settle,
                    stretch,
                    &hookd_cpu,
                )));
                theirs.add(client.block_on(load::measure(
                    peer.addr,
                    &peer_request,
                    connections,
                    settle,
                    stretch,
                    &peer_cpu,
                )));
            }
            let (ours_p50, ours_p99) = (ours.percentile(0.5), ours.percentile(0.99));
            let (theirs_p50, theirs_p99) = (theirs.percentile(0.5), theirs.percentile(0.99));
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!(
                "| {alg:?} | {connections} | {:.0} | {:.0} | {:.2}× | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.2}× | {:.0} / {:.0} | {} / {} |",
                ours.tokens_per_s(),
                theirs.tokens_per_s(),
                ours.tokens_per_s() / theirs.tokens_per_s(),
                ms(ours_p50),
                ms(ours_p99),
                ms(theirs_p50),
                ms(theirs_p99),
                ms(ours_p99) / ms(theirs_p99),
                ours.per_token(ours.server_cpu_us),
                theirs.per_token(theirs.server_cpu_us),
                ours.errors,
                theirs.errors,
            );
        }
    }
    drop(peers);
    for (server, _) in hookds {
        let _ = server.stop.send(());
        server.thread.join().unwrap();
    }
}
