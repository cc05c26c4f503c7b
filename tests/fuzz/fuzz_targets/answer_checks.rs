//! What a checked hook answer must satisfy, whatever the hook returned.

use hookd::hooks::{HookError, HookLog, TokenChanges};

/// Claims no hook may set (a sample of the registered JWT claims hookd owns).
const OWNED_BY_HOOKD: &[&str] = &["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope"];

pub fn holds(checked: Result<TokenChanges, HookError>, log: &HookLog) {
    assert!(log.notices.len() <= 16, "{} notices", log.notices.len());
    assert!(
        log.notices.iter().all(|notice| notice.len() <= 2048 + 64),
        "a notice is unbounded"
    );
    let Ok(changes) = checked else {
        return;
    };
    if let Some(scope) = &changes.scope {
        let mut seen = std::collections::HashSet::new();
        for token in scope {
            assert!(seen.insert(token), "scope {token:?} repeated");
            assert!(
                !token.is_empty()
                    && token.bytes().all(|b| b == 0x21
                        || (0x23..=0x5b).contains(&b)
                        || (0x5d..=0x7e).contains(&b)),
                "scope token {token:?} is not a scope-token of RFC 6749 §3.3"
            );
        }
    }
    for name in changes.claims.keys() {
        assert!(!name.is_empty(), "an empty claim name was kept");
        assert!(
            !OWNED_BY_HOOKD.contains(&name.as_str()),
            "the restricted claim {name:?} was kept"
        );
    }
}
