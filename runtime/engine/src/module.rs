//! Checks that a module is a hook hookd can run: a component (not a core module), importing
//! only what the host links. (The world's export is checked where the bindings are attached.)

use wasmtime::Engine;
use wasmtime::component::Component;

use super::ModuleRejected;

/// The WASI 0.2 interfaces hookd links for hooks, as `package/interface`. They are linked
/// with no capabilities: no preopened directories, every socket address denied, no
/// environment or arguments, stdout and stderr captured into the hook log.
const PROVIDED_WASI: &[&str] = &[
    "io/error",
    "io/poll",
    "io/streams",
    "clocks/monotonic-clock",
    "clocks/wall-clock",
    "random/random",
    "random/insecure",
    "random/insecure-seed",
    "cli/environment",
    "cli/exit",
    "cli/stdin",
    "cli/stdout",
    "cli/stderr",
    "cli/terminal-input",
    "cli/terminal-output",
    "cli/terminal-stdin",
    "cli/terminal-stdout",
    "cli/terminal-stderr",
    "filesystem/types",
    "filesystem/preopens",
    "sockets/network",
    "sockets/instance-network",
    "sockets/udp",
    "sockets/udp-create-socket",
    "sockets/tcp",
    "sockets/tcp-create-socket",
    "sockets/ip-name-lookup",
];

/// Tells a component from a core module (and both from anything else) by the preamble.
pub(crate) fn check_encoding(bytes: &[u8]) -> Result<(), ModuleRejected> {
    let Some(rest) = bytes.strip_prefix(b"\0asm") else {
        return Err(ModuleRejected::NotWasm);
    };
    let version: [u8; 4] = rest
        .get(..4)
        .and_then(|v| v.try_into().ok())
        .ok_or(ModuleRejected::NotWasm)?;
    match version {
        [1, 0, 0, 0] => Err(ModuleRejected::CoreModule),
        [_, _, 1, 0] => Ok(()),
        _ => Err(ModuleRejected::UnknownEncoding { version }),
    }
}

/// The types-only interface of hookd's own WIT package, which every hook of a typed world
/// imports through its world's `use types.{...}`: 0.3 adds worlds to 0.2 and changes no
/// type, so hooks built against either load.
const HOOKD_TYPES: &[&str] = &["hookd:hooks/types@0.2.", "hookd:hooks/types@0.3."];

/// Whether hookd links an import of this name (`wasi:io/streams@0.2.6` and the like).
fn is_provided(name: &str) -> bool {
    if HOOKD_TYPES.iter().any(|prefix| name.starts_with(prefix)) {
        return true;
    }
    let Some(rest) = name.strip_prefix("wasi:") else {
        return false;
    };
    let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
    PROVIDED_WASI.contains(&interface) && version.starts_with("0.2.")
}

/// Refuses a component that imports anything hookd does not link, naming the import.
pub(crate) fn check_imports(engine: &Engine, component: &Component) -> Result<(), ModuleRejected> {
    let ty = component.component_type();
    let mut imports = ty.imports(engine);
    match imports.find(|(name, _)| !is_provided(name)) {
        Some((name, _)) => Err(ModuleRejected::UnsupportedImport {
            name: name.to_owned(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_told_apart() {
        assert_eq!(check_encoding(b"hello"), Err(ModuleRejected::NotWasm));
        assert_eq!(check_encoding(b"\0asm"), Err(ModuleRejected::NotWasm));
        assert_eq!(
            check_encoding(b"\0asm\x01\0\0\0"),
            Err(ModuleRejected::CoreModule)
        );
        assert_eq!(check_encoding(b"\0asm\x0d\0\x01\0"), Ok(()));
        assert!(matches!(
            check_encoding(b"\0asm\x02\0\x02\0"),
            Err(ModuleRejected::UnknownEncoding { .. })
        ));
    }

    #[test]
    fn only_wasi_0_2_interfaces_hookd_links_are_provided() {
        assert!(is_provided("wasi:io/streams@0.2.6"));
        assert!(is_provided("wasi:cli/stdout@0.2.12"));
        assert!(is_provided("hookd:hooks/types@0.2.0"));
        assert!(is_provided("hookd:hooks/types@0.3.0"));
        assert!(!is_provided("hookd:hooks/types@0.1.0"));
        assert!(!is_provided("wasi:http/outgoing-handler@0.2.10"));
        assert!(!is_provided("wasi:io/streams@0.3.0"));
        assert!(!is_provided("fetch"));
    }
}
