//! `hookd hooks test`, the local runner, as a user runs it: the binary, a compiled hook, the
//! sample event file that ships with the examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hookd_tests::{HOSTILE, SEED};

/// The `hookd` binary next to this test binary (`cargo test --workspace` builds it for the
/// runtime crate's own CLI tests).
fn hookd_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("hookd");
    assert!(
        binary.is_file(),
        "{} is missing: run the whole workspace's tests (`cargo test --workspace`) or \
         `cargo build -p hookd` first",
        binary.display()
    );
    binary
}

fn sample_event() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-examples/events/credentials-exchange.json")
}

fn run(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().expect("tempdir");
    Command::new(hookd_binary())
        .args(args)
        .env("HOOKD_CACHE_DIR", cache.path())
        .output()
        .expect("run hookd")
}

#[test]
fn the_seed_hook_runs_on_the_sample_event() {
    let event = sample_event();
    let out = run(&[
        "hooks",
        "test",
        SEED,
        "--event",
        event.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("outcome  allow"), "{text}");
    assert!(
        text.contains("scope    read:reports write:reports extra"),
        "{text}"
    );
    assert!(text.contains(r#""https://foo.com/claim": "bar""#), "{text}");
    assert!(text.contains("compiled in"), "{text}");
}

#[test]
fn json_output_reports_the_failure_kind_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = dir.path().join("loop.json");
    std::fs::write(&event, r#"{"client": {"id": "c"}, "audience": "loop"}"#).expect("write");
    let out = run(&[
        "hooks",
        "test",
        HOSTILE,
        "--event",
        event.to_str().expect("utf-8"),
        "--fuel",
        "1000000",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["outcome"], "error");
    assert_eq!(report["error"]["kind"], "out_of_fuel");
    assert_eq!(report["fuel_used"], 1_000_000);
}

/// Kills the child process when the test ends, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_curl_command_that_gets_a_token() {
    use std::io::BufRead as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(hookd_binary())
        .args([
            "demo",
            "--hook",
            SEED,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("demo"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hookd demo");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    // Read the banner, then keep draining stdout for as long as the demo runs.
    let (found, curl) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.trim_start().starts_with("curl ") {
                let _ = found.send(line);
            }
        }
    });
    let curl_line = tokio::task::spawn_blocking(move || curl.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("reader")
        .expect("the demo prints a curl line");

    // Take the URL, the -u credentials and the -d fields from the printed command.
    let words: Vec<&str> = curl_line.split_whitespace().collect();
    let url = words
        .iter()
        .find(|w| w.starts_with("http://"))
        .expect("url");
    let credentials = words
        .windows(2)
        .find(|w| w[0] == "-u")
        .map(|w| w[1].trim_matches('\''))
        .expect("-u");
    let (id, secret) = credentials.split_once(':').expect("id:secret");
    let fields: Vec<(&str, &str)> = words
        .windows(2)
        .filter(|w| w[0] == "-d")
        .filter_map(|w| w[1].split_once('='))
        .collect();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let body = hookd_tests::form_body(&fields);
    let basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let reply = hookd_tests::send(
        http::Method::POST,
        url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &basic),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["scope"], "read:reports write:reports extra");
    let token = reply.json["access_token"].as_str().expect("token");
    let payload = token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64url"),
        )
        .expect("json")
    };
    assert_eq!(claims["https://foo.com/claim"], "bar");
}
