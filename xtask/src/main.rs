//! Project tasks behind the README's two commands: `cargo xtask demo` and `cargo xtask test`.
//! Each task first installs what a fresh machine lacks (the `wasm32-wasip2` target, the npm
//! packages of the JavaScript SDK and examples, from their lockfiles), so nothing depends on a
//! step done by hand. Plain std only, so it builds in seconds.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-wasip2";

const HELP: &str = "\
usage: cargo xtask <task> [args...]

tasks:
  setup            install what builds need: the wasm32-wasip2 target, and the npm packages
                   of sdk/js and the JavaScript examples (from their package-lock.json)
  demo [args...]   build the seed example hook and run a token server with it enabled
                   (`hookd demo`); prints a curl command that gets a token
  test [args...]   setup, then run every test: the Rust example hooks' unit tests, the
                   JavaScript SDK's tests, then `cargo test --workspace [args...]`
  build-examples   build the Rust guest examples to guest-examples/target
";

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match task.as_str() {
        "setup" => setup(),
        "demo" => setup().and_then(|()| demo(&rest)),
        "test" => setup().and_then(|()| test(&rest)),
        "build-examples" => setup().and_then(|()| build_examples().map(drop)),
        "" | "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root. Read from the environment `cargo run` sets, not baked in at compile
/// time: with a build cache shared by several checkouts, a binary compiled in one checkout
/// can be run (as fresh) from another, and must work on the one it is run from.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|error| format!("could not run {shown}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

/// Whether the active toolchain has the standard library for `target`.
fn has_target(target: &str) -> bool {
    let Ok(output) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .is_dir()
}

fn setup() -> Result<(), String> {
    if !has_target(WASM_TARGET) {
        eprintln!("xtask: installing the {WASM_TARGET} target (hooks compile to it)");
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    check_node()?;
    for dir in npm_package_dirs() {
        npm_install_locked(&dir)?;
    }
    Ok(())
}

/// The oldest Node.js the JavaScript SDK supports.
const MIN_NODE_MAJOR: u32 = 18;

/// Checks that Node.js (which builds JavaScript hooks) is on PATH and new enough.
fn check_node() -> Result<(), String> {
    let missing = || {
        format!(
            "Node.js {MIN_NODE_MAJOR} or newer (with npm) is needed to build JavaScript hooks and \
             run their tests; install it (https://nodejs.org, or e.g. `apt install nodejs npm`)"
        )
    };
    let output = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|_| missing())?;
    let version = String::from_utf8_lossy(&output.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .ok_or_else(missing)?;
    if major < MIN_NODE_MAJOR {
        return Err(format!("found Node.js {}; {}", version.trim(), missing()));
    }
    Ok(())
}

/// Every folder with an npm lockfile: the SDK and the JavaScript examples.
fn npm_package_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![root().join("sdk/js")];
    let examples = root().join("guest-examples/js");
    if let Ok(entries) = std::fs::read_dir(&examples) {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|dir| dir.join("package-lock.json").is_file())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    dirs
}

/// Installs a folder's npm packages exactly as its `package-lock.json` pins them, with npm's
/// read-only installer: `npm ci` never rewrites the lockfile, and refuses (naming what is
/// missing) one that is out of date with `package.json`. The lockfiles are complete: they
/// list every platform's optional packages, so every machine reads the same file.
///
/// `npm ci` empties `node_modules` first; a copy of the `package.json` and lockfile it
/// installed from, kept inside `node_modules`, lets a later run skip it when neither changed.
fn npm_install_locked(dir: &Path) -> Result<(), String> {
    let lockfile = dir.join("package-lock.json");
    let mut locked = Vec::new();
    for file in [dir.join("package.json"), lockfile.clone()] {
        let bytes = std::fs::read(&file)
            .map_err(|error| format!("could not read {}: {error}", file.display()))?;
        locked.extend_from_slice(&bytes);
    }
    let installed_from = dir.join("node_modules").join(".hookd-installed-from");
    if std::fs::read(&installed_from).is_ok_and(|installed| installed == locked) {
        return Ok(());
    }
    run(Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(dir))
    .map_err(|error| {
        format!(
            "{error}\n{} must match its package.json; if npm said it does not, run \
             `npm install --package-lock-only` in {} and commit the lockfile",
            lockfile.display(),
            dir.display()
        )
    })?;
    std::fs::write(&installed_from, &locked)
        .map_err(|error| format!("could not write {}: {error}", installed_from.display()))
}

/// Builds the Rust guest examples; returns the directory holding the `.wasm` files.
fn build_examples() -> Result<PathBuf, String> {
    let examples = root().join("guest-examples");
    run(cargo()
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(examples.join("Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"))?;
    Ok(examples.join("target").join(WASM_TARGET).join("release"))
}

/// Builds the seed hook, then runs `hookd demo`: a token server on the embedded store with
/// the hook enabled, printing a curl command that gets a token. Extra arguments go to
/// `hookd demo` (e.g. `--listen 127.0.0.1:9090`).
fn demo(extra: &[String]) -> Result<(), String> {
    let seed = build_examples()?.join("seed.wasm");
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "hookd",
            "--",
            "demo",
            "--hook",
        ])
        .arg(&seed)
        .arg("--data-dir")
        .arg(root().join(".hookd-demo"))
        .args(extra))
}

fn test(extra: &[String]) -> Result<(), String> {
    // The example hooks are plain Rust too: their unit tests run natively.
    run(cargo()
        .args(["test", "--manifest-path"])
        .arg(root().join("guest-examples/Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR"))?;
    // The JavaScript SDK's own tests (the adapter's semantics, the TypeScript declarations).
    run(Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(root().join("sdk/js")))?;
    run(cargo().args(["test", "--workspace"]).args(extra))
}
