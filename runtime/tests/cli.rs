//! The `hookd` binary's argument handling and error paths, run as a process.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test"
)]

use std::process::Command;

fn hookd(args: &[&str]) -> std::process::Output {
    // A cache of this test's own: concurrent tests (or runs) never share one.
    let cache = tempfile::tempdir().expect("tempdir");
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .env("HOOKD_CACHE_DIR", cache.path())
        .output()
        .expect("run hookd")
}

#[test]
fn hooks_test_help_shows_examples() {
    let out = hookd(&["hooks", "test", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:"), "{text}");
    assert!(text.contains("--event"), "{text}");
}

/// Runs `hookd hooks test` on a module and an event written to a temporary directory.
fn hooks_test(module_name: &str, module: &[u8], event: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let module_path = dir.path().join(module_name);
    let event_path = dir.path().join("event.json");
    std::fs::write(&module_path, module).expect("write");
    std::fs::write(&event_path, event).expect("write");
    hookd(&[
        "hooks",
        "test",
        module_path.to_str().expect("utf-8"),
        "--event",
        event_path.to_str().expect("utf-8"),
    ])
}

#[test]
fn a_file_that_is_not_wasm_is_refused_with_exit_2_and_a_reason() {
    // JavaScript saved as `.wasm`: only `.js`/`.ts` sources go through the JavaScript SDK.
    let out = hooks_test(
        "hook.wasm",
        b"module.exports = function () {}",
        r#"{"client": {"id": "c"}, "audience": "a"}"#,
    );
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("not a WebAssembly binary"), "{text}");
}

#[test]
fn a_malformed_event_is_refused_naming_the_field() {
    let out = hooks_test(
        "hook.wasm",
        b"\0asm\x0d\0\x01\0",
        r#"{"client": {"id": "c"}, "audiense": "a"}"#,
    );
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("audiense"), "{text}");
}
