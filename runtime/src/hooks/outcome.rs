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
}
