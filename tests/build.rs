#![allow(
    clippy::expect_used,
    reason = "a build script reports failure by panicking"
)]
//! Compiles every guest the tests run, from source: the Rust example hooks in
//! `guest-examples/` and the misbehaving guests in `tests/guests/` for `wasm32-wasip2`, and the
//! JavaScript ones with the JavaScript SDK (`sdk/js`, run by Node.js). Emits one constant per
//! component (`SEED`, `HOSTILE`, `JS_SEED`, ...) holding the path of its `.wasm`, and
//! `COMPILED_CACHE_DIR`, a compiled-hook cache the tests share across runs.

use std::env;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const WASM_TARGET: &str = "wasm32-wasip2";

/// The JavaScript guests: the constant naming the component, and its source.
const JS_GUESTS: &[(&str, &str)] = &[
    ("JS_SEED", "guest-examples/js/seed/hook.js"),
    ("JS_SEED_ACTION", "guest-examples/js/seed-action/hook.js"),
    (
        "JS_SECRET_CLAIMS",
        "guest-examples/js/secret-claims/hook.js",
    ),
    (
        "JS_DENY_BY_AUDIENCE",
        "guest-examples/js/deny-by-audience/hook.js",
    ),
    ("JS_NPM_PACKAGE", "guest-examples/js/npm-package/hook.js"),
    ("JS_HOSTILE_HOOK", "tests/guests/js/hostile-hook.js"),
    ("JS_HOSTILE_ACTION", "tests/guests/js/hostile-action.js"),
    ("JS_COUNTER_HOOK", "tests/guests/js/counter-hook.js"),
];

/// How many JavaScript builds run at once (each is a Wizer process of several hundred MB).
const JS_BUILD_JOBS: usize = 2;

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
        "tests/guests/json-answer",
        "tests/guests/js",
        "guest-examples/js",
        "sdk/js/src",
        "sdk/js/bin",
        "sdk/js/package-lock.json",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }

    check_target_installed();
    // Builds of this crate for several profiles (tests, benches, clippy) may run at once and
    // share the guests' folder: one builds the guests at a time, the others then find them
    // fresh. The lock is released when the file closes at the end of `main`.
    std::fs::create_dir_all(&guest_target).expect("create the guests' folder");
    let lock = std::fs::File::create(guest_target.join(".build-lock")).expect("create the lock");
    lock.lock().expect("lock the guests' folder");
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
    for (name, path) in build_js_guests(&root, &guest_target.join("js")) {
        let _ = writeln!(
            constants,
            "/// The JavaScript guest `{name}`, built from source by build.rs.\npub const {name}: &str = {:?};",
            path.display().to_string()
        );
    }
    let cache = guest_target.join("compiled-cache");
    let _ = writeln!(
        constants,
        "/// A compiled-hook cache the tests share across runs.\npub const COMPILED_CACHE_DIR: &str = {:?};",
        cache.display().to_string()
    );
    std::fs::write(out_dir.join("guests.rs"), constants).expect("write guests.rs");
}

/// Hashes every file under `path` (skipping `node_modules`), in a stable order.
fn hash_tree(path: &Path, hasher: &mut DefaultHasher) {
    if path.is_file() {
        path.to_string_lossy().hash(hasher);
        std::fs::read(path).unwrap_or_default().hash(hasher);
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        if child.file_name().is_some_and(|name| name == "node_modules") {
            continue;
        }
        hash_tree(&child, hasher);
    }
}

/// One JavaScript guest to (re)build.
struct JsBuild {
    source: PathBuf,
    wasm: PathBuf,
    stamp_path: PathBuf,
    stamp: String,
}

/// Builds the JavaScript guests whose inputs changed since their last build (a stamp file
/// next to each component records a hash of the SDK, the WIT and the guest's folder).
fn build_js_guests(root: &Path, out: &Path) -> Vec<(&'static str, PathBuf)> {
    let sdk = root.join("sdk/js");
    check_js_sdk(&sdk);
    std::fs::create_dir_all(out).expect("create the JavaScript guests' folder");
    let mut stale: Vec<JsBuild> = Vec::new();
    let mut built = Vec::new();
    // What every guest's build depends on, hashed once.
    let mut shared = DefaultHasher::new();
    for input in [
        "sdk/js/src",
        "sdk/js/bin",
        "sdk/js/package-lock.json",
        "wit",
    ] {
        hash_tree(&root.join(input), &mut shared);
    }
    for &(name, source) in JS_GUESTS {
        let source = root.join(source);
        let mut hasher = shared.clone();
        hash_tree(
            source.parent().expect("a guest is in a folder"),
            &mut hasher,
        );
        let stamp = format!("{:016x}", hasher.finish());
        let wasm = out.join(format!("{}.wasm", name.to_lowercase()));
        let stamp_path = wasm.with_extension("stamp");
        let fresh =
            wasm.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|old| old == stamp);
        if !fresh {
            stale.push(JsBuild {
                source,
                wasm: wasm.clone(),
                stamp_path,
                stamp,
            });
        }
        built.push((name, wasm));
    }
    for batch in stale.chunks(JS_BUILD_JOBS) {
        let children: Vec<(Child, &JsBuild)> = batch
            .iter()
            .map(|job| {
                let child = Command::new("node")
                    .arg(sdk.join("bin/hookd-js.js"))
                    .arg("build")
                    .arg(&job.source)
                    .arg("-o")
                    .arg(&job.wasm)
                    .spawn()
                    .expect("run node");
                (child, job)
            })
            .collect();
        for (mut child, job) in children {
            let status = child.wait().expect("wait for node");
            assert!(
                status.success(),
                "building the JavaScript guest {} failed",
                job.source.display()
            );
            std::fs::write(&job.stamp_path, &job.stamp).expect("write the stamp");
        }
    }
    built
}

/// Fails the build with instructions when Node.js or the SDK's npm packages are missing.
fn check_js_sdk(sdk: &Path) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "Node.js is not on PATH, so the JavaScript test hooks cannot be built. Install Node.js \
         18 or newer, then run `cargo xtask test`."
    );
    assert!(
        sdk.join("node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "the JavaScript SDK's npm packages are not installed. Run `cargo xtask test` (or \
         `cargo xtask setup`), which installs them from sdk/js/package-lock.json."
    );
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
