//! hookd's hook engine: validating, compiling, caching and running hook components in a
//! wasmtime sandbox. It depends on wasmtime and nothing of the server: no store, no HTTP, no
//! policy about what a failure means for a token.
//!
//! - [`HookEngine`] owns the one wasmtime `Engine`, the WASI linker and the compiled-artifact
//!   cache, and runs invocations (a fresh `Store` per call, bounded concurrency).
//! - [`LoadedHook`] is a validated, compiled module ready to run, with its [`HookLimits`]:
//!   only what the engine uses. The server wraps it with the stored hook's settings.
//! - Inputs and outputs are hookd's own types ([`CredentialsExchangeEvent`], [`TokenChanges`]);
//!   the WIT-generated types never leave the private `bindings` module.
#![deny(missing_docs)]

pub mod answer;
mod bindings;
mod cache;
mod claims;
mod engine;
mod error;
mod event;
pub mod files;
mod invoke;
mod limits;
mod log;
mod module;
mod outcome;
mod reuse;

pub use cache::ArtifactCacheSettings;
pub use claims::is_scope_token;
pub use engine::{EngineSettings, HookEngine, LoadSource, LoadedHook};
pub use error::{EngineError, HookError, ModuleRejected, OutputViolation};
pub use event::{
    ClientInfo, CredentialsExchangeEvent, HookContext, RequestInfo, ResourceServerInfo,
};
pub use limits::HookLimits;
pub use outcome::{Denial, DenyCode, HookLog, Invocation, TokenChanges};

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
