//! What `hooks test` and `hooks deploy` read: a component as it is, or a JavaScript or
//! TypeScript hook built into one through the JavaScript SDK (`sdk/js`, run with Node.js).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Source extensions built through the JavaScript SDK.
const SOURCE_EXTENSIONS: &[&str] = &["js", "mjs", "cjs", "ts", "mts", "cts"];

/// The SDK's command-line entry point, relative to its package folder.
const SDK_ENTRY: &str = "bin/hookd-js.js";

/// The SDK in the source tree this binary was built from, when it is still there.
fn bundled_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/js")
}

/// Whether `path` names a hook source file rather than a component.
pub(crate) fn is_javascript(path: &Path) -> bool {
    path.extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| SOURCE_EXTENSIONS.contains(&ext))
}

/// Finds the JavaScript SDK: `HOOKD_JS_SDK`, then `node_modules/hookd-js` in the working
/// directory, then the SDK of the hookd checkout this binary was built from.
fn find_sdk(hook: &Path) -> anyhow::Result<PathBuf> {
    let explicit = std::env::var_os("HOOKD_JS_SDK").map(PathBuf::from);
    let working_dir = std::env::current_dir().context("could not read the working directory")?;
    locate_sdk(hook, explicit, &working_dir, &bundled_sdk())
}

/// Where the SDK is, given `HOOKD_JS_SDK` (`explicit`), the working directory and the
/// checkout's SDK. Only those three places count: never a `node_modules` in a folder above the
/// hook or the working directory, which in `/tmp` or a shared folder anyone could have made,
/// and whose code would run as the operator.
fn locate_sdk(
    hook: &Path,
    explicit: Option<PathBuf>,
    working_dir: &Path,
    bundled: &Path,
) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        if !dir.join(SDK_ENTRY).is_file() {
            bail!(
                "HOOKD_JS_SDK is {}, which holds no {SDK_ENTRY}; point it at hookd's sdk/js folder",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let installed = working_dir.join("node_modules/hookd-js");
    if installed.join(SDK_ENTRY).is_file() {
        return Ok(installed);
    }
    if bundled.join(SDK_ENTRY).is_file() {
        return Ok(bundled.to_owned());
    }
    bail!(
        "{} is JavaScript, and the hookd JavaScript SDK was not found. Install it in the working \
         directory (`npm install <hookd checkout>/sdk/js`) or set HOOKD_JS_SDK to its folder",
        hook.display()
    )
}

/// Checks that Node.js runs, explaining how to get it when it does not.
fn check_node() -> anyhow::Result<()> {
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        _ => bail!(
            "building JavaScript hooks needs Node.js 18 or newer on PATH, and `node` did not run. \
             Install it (https://nodejs.org, or e.g. `apt install nodejs npm`), or build the hook \
             elsewhere with `npx hookd-js build hook.js` and give hookd the .wasm"
        ),
    }
}

/// Builds a JavaScript hook with the SDK; returns the component's bytes. The SDK's messages
/// (progress, syntax errors with file and line) go straight to stderr.
fn build_javascript(hook: &Path) -> anyhow::Result<Vec<u8>> {
    let sdk = find_sdk(hook)?;
    check_node()?;
    if !sdk
        .join("node_modules/@bytecodealliance/componentize-js")
        .is_dir()
    {
        bail!(
            "the JavaScript SDK in {} has no npm packages installed: run `npm install` there \
             (in a hookd checkout, `cargo xtask setup` does it)",
            sdk.display()
        );
    }
    let out = tempfile::Builder::new()
        .prefix("hookd-js-")
        .suffix(".wasm")
        .tempfile()
        .context("could not create a temporary file for the built hook")?;
    eprintln!("building {} with the JavaScript SDK", hook.display());
    let status = Command::new("node")
        .arg(sdk.join(SDK_ENTRY))
        .arg("build")
        .arg(hook)
        .arg("-o")
        .arg(out.path())
        .status()
        .context("could not run node")?;
    if !status.success() {
        bail!("building {} failed (see above)", hook.display());
    }
    std::fs::read(out.path()).context("could not read the built hook")
}

/// Reads a hook module: a component file as it is, a JavaScript or TypeScript source built
/// into a component first.
pub(crate) fn read_hook_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    if is_javascript(path) {
        if !path.is_file() {
            bail!("could not read {}: no such file", path.display());
        }
        return build_javascript(path);
    }
    std::fs::read(path).with_context(|| format!("could not read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding what looks like the SDK.
    fn fake_sdk(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        std::fs::write(dir.join(SDK_ENTRY), "").expect("write");
        dir.to_owned()
    }

    #[test]
    fn the_sdk_comes_only_from_the_variable_the_working_directory_or_the_checkout() {
        let root = tempfile::tempdir().expect("tempdir");
        // Someone planted an SDK above the hook and above the working directory.
        fake_sdk(&root.path().join("node_modules/hookd-js"));
        let hook_dir = root.path().join("hooks");
        let working_dir = root.path().join("work");
        std::fs::create_dir_all(&hook_dir).expect("mkdir");
        std::fs::create_dir_all(&working_dir).expect("mkdir");
        let hook = hook_dir.join("hook.js");
        let checkout = fake_sdk(&root.path().join("checkout/sdk/js"));
        let nowhere = root.path().join("no-checkout");

        // The planted one is never used: the checkout's is, or none at all.
        assert_eq!(
            locate_sdk(&hook, None, &working_dir, &checkout).expect("found"),
            checkout
        );
        let error = locate_sdk(&hook, None, &working_dir, &nowhere).expect_err("none");
        assert!(error.to_string().contains("HOOKD_JS_SDK"), "{error}");
        assert!(locate_sdk(&hook, None, &hook_dir, &nowhere).is_err());

        // The working directory's own node_modules comes before the checkout.
        let installed = fake_sdk(&working_dir.join("node_modules/hookd-js"));
        assert_eq!(
            locate_sdk(&hook, None, &working_dir, &checkout).expect("found"),
            installed
        );

        // HOOKD_JS_SDK comes first, and must hold the SDK.
        let explicit = fake_sdk(&root.path().join("explicit"));
        assert_eq!(
            locate_sdk(&hook, Some(explicit.clone()), &working_dir, &checkout).expect("found"),
            explicit
        );
        assert!(locate_sdk(&hook, Some(nowhere), &working_dir, &checkout).is_err());
    }
}
