//! `hookd hooks test`, the local runner, as a user runs it: the binary, a compiled hook, the
//! sample event file that ships with the examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
