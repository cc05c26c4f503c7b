//! What one hook invocation produced: the token changes or the failure, and the hook's log,
//! fuel and time.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::HookError;

/// How a hook changes the token, after validation: restricted claims are already removed and
/// every claim value is parsed JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenChanges {
    /// The scopes that replace the granted ones, in the hook's order, duplicates removed.
    /// `None` keeps the granted scopes.
    pub scope: Option<Vec<String>>,
    /// Custom claims to add to the token.
    pub claims: Map<String, Value>,
}

/// The OAuth 2.0 error code a hook's refusal maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyCode {
    /// `invalid_scope`, HTTP 400.
    InvalidScope,
    /// `invalid_request`, HTTP 400.
    InvalidRequest,
    /// `server_error`, HTTP 500.
    ServerError,
}

impl DenyCode {
    /// The RFC 6749 error code, e.g. `invalid_scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyCode::InvalidScope => "invalid_scope",
            DenyCode::InvalidRequest => "invalid_request",
            DenyCode::ServerError => "server_error",
        }
    }
}

impl std::fmt::Display for DenyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook's refusal to issue the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The error code the client receives.
    pub code: DenyCode,
    /// The `error_description` the client receives.
    pub description: String,
}

/// What the hook wrote, and what the host noted about the call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookLog {
    /// The hook's stdout and stderr, interleaved as written, lossily decoded as UTF-8.
    pub output: String,
    /// Whether output beyond [`HookLimits::max_log_bytes`](super::HookLimits) was dropped.
    pub truncated: bool,
    /// The host's notes on this call: dropped claims, failure details. Written by hookd, not
    /// by the hook.
    pub notices: Vec<String>,
}

/// Most bytes of a denial's description that is kept (it becomes the client's
/// `error_description`).
pub(crate) const MAX_DENIAL_BYTES: usize = 1 << 10;
/// Most bytes of a hook's failure message that is kept.
pub(crate) const MAX_FAILURE_BYTES: usize = 4 << 10;
/// Most bytes of a claim name, scope or parser message quoted in an error or a notice.
pub(crate) const MAX_QUOTED_BYTES: usize = 256;
/// Most notices kept for one call, and most bytes of each.
const MAX_NOTICES: usize = 16;
const MAX_NOTICE_BYTES: usize = 2 << 10;

/// `text` cut to at most `max` bytes (plus a marker) on a character boundary. Every string a
/// hook hands the host passes through here (or a limit) before it is stored anywhere, so a
/// hook cannot make the host keep more than a bounded amount per call.
pub(crate) fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("… (truncated)");
    }
    text
}

impl HookLog {
    /// Adds a host notice, bounded in size; past [`MAX_NOTICES`] one last notice says that
    /// more were dropped.
    pub fn notice(&mut self, text: String) {
        match self.notices.len() {
            n if n + 1 < MAX_NOTICES => self.notices.push(bounded(text, MAX_NOTICE_BYTES)),
            n if n + 1 == MAX_NOTICES => self
                .notices
                .push("further notices about this call were dropped".to_owned()),
            _ => {}
        }
    }
}

/// The record of one invocation: its result plus the measurements taken.
#[derive(Debug)]
pub struct Invocation {
    /// The token changes, or why the hook did not produce any.
    pub result: Result<TokenChanges, HookError>,
    /// What the hook logged, and the host's notes.
    pub log: HookLog,
    /// Fuel the call burned (instantiation included).
    pub fuel_used: u64,
    /// Wall-clock time from taking a slot to the end of the call.
    pub elapsed: Duration,
    /// Whether the call ran in a live instance kept from an earlier call (instance reuse)
    /// instead of a fresh one.
    pub reused_instance: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_cut_on_a_character_boundary_and_notices_are_capped() {
        let cut = bounded("é".repeat(1000), 7);
        assert_eq!(cut, "ééé… (truncated)");
        assert_eq!(bounded("short".to_owned(), 7), "short");
        let mut log = HookLog::default();
        for i in 0..1000 {
            log.notice(format!("{i}: {}", "x".repeat(10_000)));
        }
        assert_eq!(log.notices.len(), MAX_NOTICES);
        assert!(log.notices.iter().all(|n| n.len() <= MAX_NOTICE_BYTES + 16));
        assert!(log.notices[MAX_NOTICES - 1].contains("dropped"));
    }
}
