#![allow(
    clippy::expect_used,
    reason = "a build script reports failure by panicking"
)]
//! Compiles every guest the tests run, from source, for `wasm32-wasip2`: the example hooks in
//! `guest-examples/` and the misbehaving guests in `tests/guests/`. Emits one constant per
//! component (`SEED`, `HOSTILE`, ...) holding the path of its `.wasm`.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    // <target>/<profile>/build/<pkg>-<hash>/out -> <target>/wasm-guests, shared by every
    // build of this crate so guests are not rebuilt from scratch when the hash changes.
    let guest_target = out_dir.ancestors().nth(4).map_or_else(
        || out_dir.join("wasm-guests"),
        |target| target.join("wasm-guests"),
    );

    for watched in [
        "wit",
        "sdk/rust/src",
        "sdk/rust/Cargo.toml",
        "guest-examples/Cargo.toml",
        "guest-examples/Cargo.lock",
        "guest-examples/rust",
        "tests/guests/Cargo.toml",
        "tests/guests/Cargo.lock",
        "tests/guests/hostile",
        "tests/guests/wrong-world",
        "tests/guests/forbidden-import",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }

    check_target_installed();
    let mut constants = String::new();
    for workspace in ["guest-examples", "tests/guests"] {
        build_workspace(&root.join(workspace), &guest_target);
    }
    let release = guest_target.join(WASM_TARGET).join("release");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&release)
        .expect("guest build output exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    names.sort();
    for path in names {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let _ = writeln!(
            constants,
            "/// `{stem}.wasm`, compiled from source by build.rs.\npub const {}: &str = {:?};",
            stem.to_uppercase(),
            path.display().to_string()
        );
    }
    std::fs::write(out_dir.join("guests.rs"), constants).expect("write guests.rs");
}

fn check_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    if !Path::new(&sysroot)
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .is_dir()
    {
        panic!(
            "the {WASM_TARGET} target is not installed, so the test hooks cannot be compiled. \
             Run `cargo xtask test` (which installs it) or `rustup target add {WASM_TARGET}`."
        );
    }
}

fn build_workspace(workspace: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        // The host build's flags and settings are not the guests'.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status()
        .expect("run cargo for the guests");
    assert!(
        status.success(),
        "building the guests in {} failed",
        workspace.display()
    );
}
