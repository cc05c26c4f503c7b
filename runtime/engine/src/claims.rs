//! Validation of a hook's output: the claim policy (restricted names and namespaces are
//! dropped and reported, values must be JSON), scope syntax, and the output size cap.

use serde_json::{Map, Value};

use super::outcome::{MAX_QUOTED_BYTES, bounded};
use super::{HookLog, OutputViolation, TokenChanges};

/// Claims a hook may not set. Auth0's restricted list (they are ignored, not an error) plus
/// the claims hookd itself sets on every token (`scope`, `client_id`, `iss`, ...).
const RESTRICTED_CLAIMS: &[&str] = &[
    "acr",
    "act",
    "active",
    "amr",
    "at_hash",
    "ath",
    "attest",
    "aud",
    "auth_time",
    "authorization_details",
    "azp",
    "c_hash",
    "client_id",
    "cnf",
    "cty",
    "dest",
    "entitlements",
    "events",
    "exp",
    "groups",
    "gty",
    "htm",
    "htu",
    "iat",
    "internalService",
    "iss",
    "jcard",
    "jku",
    "jti",
    "jwe",
    "jwk",
    "kid",
    "may_act",
    "mky",
    "nbf",
    "nonce",
    "object_id",
    "org_id",
    "org_name",
    "orig",
    "origid",
    "permissions",
    "roles",
    "rph",
    "s_hash",
    "scope",
    "sid",
    "sip_callid",
    "sip_cseq_num",
    "sip_date",
    "sip_from_tag",
    "sip_via_branch",
    "sub",
    "sub_jwk",
    "toe",
    "txn",
    "typ",
    "uuid",
    "vot",
    "vtm",
    "x5t#S256",
];

/// Namespaces Auth0 reserves; claims under them are dropped.
const RESERVED_HOSTS: &[&str] = &["auth0.com", "webtask.io", "webtask.run"];

/// The claim and scope lists exactly as the hook returned them.
#[derive(Debug)]
pub(crate) struct RawChanges {
    pub(crate) scope: Option<Vec<String>>,
    pub(crate) claims: Vec<(String, String)>,
}

/// Why a claim is not applied, if it is not.
fn restriction(name: &str) -> Option<&'static str> {
    if RESTRICTED_CLAIMS.contains(&name) {
        return Some("it is a restricted claim");
    }
    if name.starts_with("urn:auth0") {
        return Some("the urn:auth0 namespace is reserved");
    }
    let host = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .map(|rest| rest.split(['/', ':', '?', '#']).next().unwrap_or_default());
    if let Some(host) = host {
        let host = host.to_ascii_lowercase();
        if RESERVED_HOSTS
            .iter()
            .any(|reserved| host == *reserved || host.ends_with(&format!(".{reserved}")))
        {
            return Some("its namespace is reserved");
        }
    }
    None
}

/// Applies the claim policy and limits to a hook's raw output. Dropped claims are reported in
/// `log`'s notices; anything else wrong fails the whole output. Names and values quoted in
/// either are bounded.
pub(crate) fn validate(
    raw: RawChanges,
    max_output_bytes: u64,
    log: &mut HookLog,
) -> Result<TokenChanges, OutputViolation> {
    let scope_bytes: usize = raw.scope.iter().flatten().map(String::len).sum();
    let claim_bytes: usize = raw.claims.iter().map(|(n, v)| n.len() + v.len()).sum();
    let size = (scope_bytes + claim_bytes) as u64;
    if size > max_output_bytes {
        return Err(OutputViolation::TooLarge {
            size,
            limit: max_output_bytes,
        });
    }

    let scope = match raw.scope {
        None => None,
        Some(list) => {
            let mut kept: Vec<String> = Vec::with_capacity(list.len());
            for value in list {
                if !is_scope_token(&value) {
                    return Err(OutputViolation::InvalidScope {
                        value: bounded(value, MAX_QUOTED_BYTES),
                    });
                }
                if !kept.contains(&value) {
                    kept.push(value);
                }
            }
            Some(kept)
        }
    };

    let mut claims = Map::new();
    for (name, text) in raw.claims {
        if name.is_empty() {
            return Err(OutputViolation::EmptyClaimName);
        }
        let value: Value =
            serde_json::from_str(&text).map_err(|error| OutputViolation::ClaimNotJson {
                name: bounded(name.clone(), MAX_QUOTED_BYTES),
                error: bounded(error.to_string(), MAX_QUOTED_BYTES),
            })?;
        if claims.contains_key(&name) {
            return Err(OutputViolation::DuplicateClaim {
                name: bounded(name, MAX_QUOTED_BYTES),
            });
        }
        if let Some(why) = restriction(&name) {
            let quoted = bounded(name, MAX_QUOTED_BYTES);
            log.notice(format!("claim `{quoted}` was dropped: {why}"));
            continue;
        }
        claims.insert(name, value);
    }
    Ok(TokenChanges { scope, claims })
}

/// Whether `scope` is an RFC 6749 §3.3 scope token: `1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(claims: &[(&str, &str)], scope: Option<&[&str]>) -> RawChanges {
        RawChanges {
            scope: scope.map(|s| s.iter().map(|v| v.to_string()).collect()),
            claims: claims
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn namespaced_claims_pass_and_values_are_parsed() {
        let mut log = HookLog::default();
        let changes = validate(
            raw(
                &[
                    ("https://foo.com/claim", r#""bar""#),
                    ("tier", r#"{"n":1}"#),
                ],
                Some(&["a", "extra", "a"]),
            ),
            100_000,
            &mut log,
        )
        .unwrap();
        assert_eq!(changes.claims["https://foo.com/claim"], Value::from("bar"));
        assert_eq!(changes.claims["tier"]["n"], Value::from(1));
        assert_eq!(
            changes.scope,
            Some(vec!["a".to_owned(), "extra".to_owned()])
        );
        assert!(log.notices.is_empty());
    }

    #[test]
    fn restricted_and_reserved_claims_are_dropped_with_a_notice() {
        let mut log = HookLog::default();
        let changes = validate(
            raw(
                &[
                    ("iss", r#""evil""#),
                    ("scope", r#""admin""#),
                    ("https://auth0.com/x", "1"),
                    ("https://tenant.webtask.io/y", "1"),
                    ("urn:auth0:z", "1"),
                    ("https://auth0.com.example.org/ok", "1"),
                ],
                None,
            ),
            100_000,
            &mut log,
        )
        .unwrap();
        assert_eq!(
            changes.claims.keys().collect::<Vec<_>>(),
            ["https://auth0.com.example.org/ok"]
        );
        assert_eq!(log.notices.len(), 5);
        assert!(log.notices[0].contains("`iss`"));
    }

    #[test]
    fn bad_outputs_are_typed() {
        let mut n = HookLog::default();
        assert!(matches!(
            validate(raw(&[("c", "{nope")], None), 100, &mut n),
            Err(OutputViolation::ClaimNotJson { name, .. }) if name == "c"
        ));
        assert_eq!(
            validate(raw(&[("", "1")], None), 100, &mut n).unwrap_err(),
            OutputViolation::EmptyClaimName
        );
        assert!(matches!(
            validate(raw(&[("c", "1"), ("c", "2")], None), 100, &mut n),
            Err(OutputViolation::DuplicateClaim { .. })
        ));
        assert!(matches!(
            validate(raw(&[], Some(&["has space"])), 100, &mut n),
            Err(OutputViolation::InvalidScope { .. })
        ));
        assert!(matches!(
            validate(raw(&[], Some(&[""])), 100, &mut n),
            Err(OutputViolation::InvalidScope { .. })
        ));
        assert_eq!(
            validate(raw(&[("c", "\"0123456789\"")], None), 8, &mut n).unwrap_err(),
            OutputViolation::TooLarge { size: 13, limit: 8 }
        );
    }

    #[test]
    fn names_quoted_in_errors_and_notices_are_bounded() {
        let long = format!("urn:auth0:{}", "n".repeat(100_000));
        let many: Vec<(String, String)> = (0..10_000)
            .map(|i| (format!("urn:auth0:{i}"), "1".to_owned()))
            .chain([(long.clone(), "1".to_owned())])
            .collect();
        let mut log = HookLog::default();
        let changes = validate(
            RawChanges {
                scope: None,
                claims: many,
            },
            1 << 20,
            &mut log,
        )
        .unwrap();
        assert!(changes.claims.is_empty());
        let kept: usize = log.notices.iter().map(String::len).sum();
        assert!(kept < 8 << 10, "{kept} bytes of notices kept");

        let mut log = HookLog::default();
        let error = validate(raw(&[(&long, "{nope")], None), 1 << 20, &mut log).unwrap_err();
        assert!(
            error.to_string().len() < 1 << 10,
            "{}",
            error.to_string().len()
        );
    }
}
