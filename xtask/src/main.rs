//! Project tasks behind the README's two commands: `cargo xtask demo` and `cargo xtask test`.
//! Each task first installs what a fresh machine lacks (the `wasm32-wasip2` target, the npm
//! packages of the JavaScript SDK and examples, from their lockfiles), so nothing depends on a
//! step done by hand. Plain std only, so it builds in seconds.

mod cluster;

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
  fuzz [SECONDS]   run every fuzz target in tests/fuzz for SECONDS (default 20) on its seed
                   corpus, with cargo-fuzz (installed into HOOKD_CACHE/cargo-fuzz if missing);
                   finds go to tests/fuzz/artifacts, new corpus entries to a temporary folder
  cluster [NODES]  PostgreSQL (from Debian's packages) and NODES hookd nodes (default 3) on
                   127.0.0.1, sharing one database, for trying the multi-node mode; prints
                   their addresses and the admin's credentials; Enter or Ctrl-C stops them
";

/// The cargo-fuzz release the fuzz task installs when `cargo fuzz` is missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match task.as_str() {
        "setup" => setup(),
        "demo" => setup().and_then(|()| demo(&rest)),
        "test" => setup().and_then(|()| test(&rest)),
        "build-examples" => setup().and_then(|()| build_examples().map(drop)),
        "fuzz" => fuzz(&rest),
        "cluster" => cluster::cluster(&rest),
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

/// Where builds and tools outside the checkout are cached: `HOOKD_CACHE`, else
/// `~/.cache/hookd`.
fn cache_dir() -> PathBuf {
    env::var_os("HOOKD_CACHE").map_or_else(
        || {
            PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/hookd")
        },
        PathBuf::from,
    )
}

/// `cargo fuzz`: the one on PATH, else one installed into the cache.
fn cargo_fuzz() -> Result<Command, String> {
    let on_path = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if on_path {
        let mut command = cargo();
        command.arg("fuzz");
        return Ok(command);
    }
    let root = cache_dir().join("cargo-fuzz");
    let binary = root.join("bin/cargo-fuzz");
    if !binary.is_file() {
        run(cargo()
            .args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(&root))?;
    }
    let mut command = Command::new(binary);
    command.arg("fuzz");
    Ok(command)
}

/// Runs each fuzz target for `seconds` on its committed seed corpus. libFuzzer's own
/// instrumentation needs no nightly features with `--sanitizer none`; the targets build in a
/// target directory of their own, since every crate is compiled with coverage counters.
fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args.first() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("fuzz: {text:?} is not a number of seconds"))?,
        None => 20,
    };
    let fuzz_dir = root().join("tests/fuzz");
    let target_dir = cache_dir().join("fuzz-target");
    let common = |command: &mut Command| {
        command
            .args(["-O", "--sanitizer", "none", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg("--target-dir")
            .arg(&target_dir);
    };
    let mut build = cargo_fuzz()?;
    build.arg("build");
    common(&mut build);
    run(&mut build)?;
    let targets = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))
        .map_err(|error| format!("could not list tests/fuzz/fuzz_targets: {error}"))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            // Only the files with a corpus are targets; the others are shared modules.
            fuzz_dir.join("corpus").join(&name).is_dir().then_some(name)
        })
        .collect::<std::collections::BTreeSet<_>>();
    if targets.is_empty() {
        return Err("no fuzz targets found".to_owned());
    }
    for target in targets {
        let found = env::temp_dir().join(format!("hookd-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&found)
            .map_err(|error| format!("could not create {}: {error}", found.display()))?;
        println!("fuzzing {target} for {seconds} s");
        let mut fuzz = cargo_fuzz()?;
        fuzz.arg("run");
        common(&mut fuzz);
        fuzz.arg(&target)
            .arg(&found)
            .arg(fuzz_dir.join("corpus").join(&target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        let result = run(&mut fuzz);
        let _ = std::fs::remove_dir_all(&found);
        result?;
    }
    Ok(())
}
