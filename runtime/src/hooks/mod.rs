//! The hook engine: loading hook components and running them in a sandbox.
//!
//! - [`HookEngine`] owns the one wasmtime `Engine`, the WASI linker and the compiled-artifact
//!   cache, and runs invocations (a fresh `Store` per call, bounded concurrency).
//! - [`LoadedHook`] is a validated, compiled hook ready to run, with its [`HookLimits`].
//! - [`HookRegistry`] holds the enabled hook of each [`ExtensibilityPoint`] and swaps it
//!   atomically.
//! - Inputs and outputs are hookd's own types ([`CredentialsExchangeEvent`], [`TokenChanges`]);
//!   the WIT-generated types never leave the private `bindings` module.

pub mod answer;
mod bindings;
mod cache;
mod claims;
mod engine;
mod error;
mod event;
mod invoke;
mod limits;
mod log;
mod module;
mod outcome;
mod registry;
mod reuse;

pub use cache::ArtifactCacheSettings;
pub use engine::{EngineSettings, HookEngine, LoadSource, LoadedHook};
pub use error::{EngineError, HookError, ModuleRejected, OutputViolation};
pub use event::{
    ClientInfo, CredentialsExchangeEvent, HookContext, RequestInfo, ResourceServerInfo,
};
pub use limits::HookLimits;
pub use outcome::{Denial, DenyCode, HookLog, Invocation, TokenChanges};
pub use registry::{HookRegistry, RegisteredHook, UnavailableHook};

/// What the token endpoint does when a hook fails (traps, runs out of fuel, memory or time,
/// returns invalid output). A denial is not a failure: it is always honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Refuse the token with 500 `server_error` (Auth0's behaviour).
    #[default]
    FailClosed,
    /// Issue the token without the hook's changes (Okta's behaviour).
    FailOpen,
}

/// A point in the token flow where a hook can run. Each has its own WIT world; hookd runs at
/// most one enabled hook per point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtensibilityPoint {
    /// Client Credentials Exchange (Auth0 trigger id `credentials-exchange`): runs on
    /// `POST /oauth/token` with `grant_type=client_credentials` before the token is signed.
    CredentialsExchange,
}

impl ExtensibilityPoint {
    /// Every extensibility point hookd knows.
    pub const ALL: [ExtensibilityPoint; 1] = [ExtensibilityPoint::CredentialsExchange];

    /// The Auth0 trigger id, which is also the WIT world's name.
    pub fn trigger_id(self) -> &'static str {
        match self {
            ExtensibilityPoint::CredentialsExchange => "credentials-exchange",
        }
    }

    /// Looks an extensibility point up by its Auth0 trigger id.
    pub fn from_trigger_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|point| point.trigger_id() == id)
    }
}

impl std::fmt::Display for ExtensibilityPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.trigger_id())
    }
}
