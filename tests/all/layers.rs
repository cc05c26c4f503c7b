//! The server's module layering (`docs/ARCHITECTURE.md`): each module of `runtime/src` may use
//! only the modules listed for it, so the graph has no cycles and `http` never reaches the
//! store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each top-level module of the `hookd` crate may use (`hooks` and `files` are the
/// engine crate, which every layer may use).
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "app",
        &[
            "clock",
            "hooklog",
            "http",
            "keys",
            "management",
            "metrics",
            "model",
            "registry",
            "secrets",
            "store",
            "token",
        ],
    ),
    (
        "http",
        &[
            "clock",
            "management",
            "metrics",
            "model",
            "proto",
            "secrets",
            "token",
        ],
    ),
    (
        "token",
        &[
            "hooklog", "keys", "metrics", "model", "registry", "secrets", "store",
        ],
    ),
    (
        "management",
        &[
            "hooklog", "keys", "metrics", "model", "proto", "registry", "secrets", "store",
        ],
    ),
    ("registry", &["hooklog", "metrics", "model"]),
    ("hooklog", &["proto"]),
    ("store", &["model"]),
    ("keys", &["model", "secrets"]),
    ("proto", &["model"]),
    ("model", &["secrets"]),
    ("secrets", &[]),
    ("clock", &[]),
    ("metrics", &[]),
];

/// The top-level modules of `hookd` each module of `runtime/src` names in `crate::` paths
/// (test modules left out).
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src");
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("runtime/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under root");
            let top = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_owned();
            if ["lib", "main", "cli"].contains(&top.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let used = found.entry(top.clone()).or_default();
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or_default();
                    group
                        .split(',')
                        .map(|part| part.trim().split("::").next().unwrap_or_default())
                        .collect()
                } else {
                    vec![
                        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or_default(),
                    ]
                };
                for name in names {
                    if !name.is_empty() && name != top {
                        used.insert(name.to_owned());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn modules_depend_only_downward() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(module, uses)| (*module, uses.iter().copied().collect()))
        .collect();
    let found = uses();
    assert!(
        found.contains_key("token") && found.contains_key("management"),
        "the scan found the modules: {found:?}"
    );
    let mut wrong = Vec::new();
    for (module, used) in &found {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!("{module} is not in the layering table"));
            continue;
        };
        for name in used {
            if ["hooks", "files"].contains(&name.as_str()) {
                continue;
            }
            if !may.contains(name.as_str()) {
                wrong.push(format!("{module} uses {name}"));
            }
        }
    }
    assert!(wrong.is_empty(), "against the layering: {wrong:#?}");
}
