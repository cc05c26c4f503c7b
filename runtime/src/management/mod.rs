//! The management service: every rule of the Management API in one place. Who may call
//! ([`Caller`]), validation, conflicts, the one-enabled-hook rule, the guards on the
//! Management API's own resource server and the applications granted it, and applying hook
//! changes to the live registry. One file per resource; each operation takes `now` where time
//! matters. `http` parses and renders; it never reaches the store.
//!
//! The free functions (`create_client`, `create_api`, `create_grant`, `create_hook`, ...)
//! apply the same rules to a store before any server runs (the demo, bootstrap, tests).

mod apis;
mod caller;
mod clients;
mod grants;
mod hooks;
mod keys;
mod nodes;
mod replay;
mod secrets;

use std::sync::Arc;

pub use apis::{NewApi, create_api, new_api_record, reveal_signing_secret};
pub use caller::Caller;
pub use clients::{create_client, create_client_with, new_client_record};
pub use grants::create_grant;
pub use hooks::create_hook;
pub use keys::longest_token_lifetime;
pub use nodes::{HEARTBEAT_EVERY, LIVE_WITHIN};
pub use secrets::{MAX_SECRET_BYTES, MAX_SECRETS_PER_HOOK, SecretsChange};

use crate::hooklog::HookLogBook;
use crate::hooks::{HookEngine, ModuleRejected};
use crate::keys::LiveKeys;
use crate::metrics::Metrics;
use crate::model::{NodeReport, Tenant};
use crate::registry::HookRegistry;
use crate::secrets::{SecretBox, SecretHasher};
use crate::store::RecordStore as _;
use crate::store::{Store, StoreError};

/// Why a management operation did not happen. Rendered to HTTP in one place
/// (`http::error::management_failure`).
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// No token, or one that does not verify or no longer holds (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller lacks a scope (403 `insufficient_scope`).
    #[error("{0}")]
    Forbidden(String),
    /// A field is invalid; the message names it (400 `invalid_body`).
    #[error("{0}")]
    Invalid(String),
    /// The operation is not allowed on this resource (400 `operation_not_supported`).
    #[error("{0}")]
    NotSupported(&'static str),
    /// The module was refused (400 `invalid_module`).
    #[error(transparent)]
    Module(#[from] ModuleRejected),
    /// The resource does not exist (404 `inexistent_resource`).
    #[error("{0}")]
    NotFound(String),
    /// The write would break a uniqueness rule (409 `conflict`).
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached in time; nothing changed (503 with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    /// Something on the server broke (the store, a stored secret that will not open, a module
    /// missing from the store, a task that died): not the caller's doing. The detail is for
    /// the log only.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ManagementError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(message) => ManagementError::NotFound(message),
            StoreError::Conflict(message) => ManagementError::Conflict(message),
            StoreError::Unavailable(detail) => ManagementError::Unavailable(detail),
            other => ManagementError::Internal(other.to_string()),
        }
    }
}

/// A 404 naming what was missing.
fn not_found(what: &str, id: &str) -> ManagementError {
    ManagementError::NotFound(format!("no {what} {id}"))
}

/// The management service over one server's store, keys, hook engine and registry.
#[derive(Debug)]
pub struct Management {
    store: Store,
    hasher: SecretHasher,
    secret_box: Arc<SecretBox>,
    keys: LiveKeys,
    hook_log: Arc<HookLogBook>,
    hooks: hooks::HookChanges,
    tenant: Tenant,
    /// The Management API's audience, `<issuer>api/v2/`.
    audience: String,
    /// One key rotation at a time: each reads the set the previous one wrote.
    rotation: tokio::sync::Mutex<()>,
    /// This node.
    node: NodeReport,
}

/// What the management service is built from.
#[derive(Debug)]
pub struct ManagementParts {
    /// The store.
    pub store: Store,
    /// Hashes new client secrets.
    pub hasher: SecretHasher,
    /// Seals HS256 secrets and hook secrets.
    pub secret_box: Arc<SecretBox>,
    /// The signing keys in use (shared with the token path).
    pub keys: LiveKeys,
    /// Every hook's recent invocations.
    pub hook_log: Arc<HookLogBook>,
    /// Compiles hook modules.
    pub engine: HookEngine,
    /// What each trigger runs (shared with the token path).
    pub registry: Arc<HookRegistry>,
    /// What the server counts and measures (hook metrics are resolved per hook version).
    pub metrics: Arc<Metrics>,
    /// The tenant.
    pub tenant: Tenant,
    /// This node, as it reports itself (the revision it applied and the heartbeat are filled
    /// in at each report).
    pub node: NodeReport,
}

impl Management {
    /// The service over these parts.
    pub fn new(parts: ManagementParts) -> Self {
        let hooks = hooks::HookChanges::new(
            parts.store.clone(),
            parts.engine,
            parts.registry,
            parts.secret_box.clone(),
            parts.metrics,
            parts.hook_log.clone(),
        );
        Management {
            audience: crate::model::management_audience(&parts.tenant.issuer),
            store: parts.store,
            hasher: parts.hasher,
            secret_box: parts.secret_box,
            keys: parts.keys,
            hook_log: parts.hook_log,
            hooks,
            tenant: parts.tenant,
            rotation: tokio::sync::Mutex::new(()),
            node: parts.node,
        }
    }

    /// Loads every enabled hook into the registry (at startup). A hook that cannot be loaded
    /// holds its trigger as unavailable instead of stopping the server.
    pub async fn load_enabled_hooks(&self) -> Result<(), ManagementError> {
        self.hooks.load_enabled().await
    }

    /// Applies what the store's change feed says changed (as `(entity, id)` pairs, another
    /// node's writes or this node's own): hooks are run as the store now says, and signing keys
    /// are reloaded. Applying a change twice changes nothing. Clients, APIs and grants need
    /// nothing here: the store's own snapshot follows them.
    pub async fn apply_changes(&self, changed: &[(String, String)]) -> Result<(), ManagementError> {
        if changed.iter().any(|(entity, _)| entity == "hook") {
            self.hooks.follow_store().await?;
        }
        if changed.iter().any(|(entity, _)| entity == "keys") {
            self.reload_signing_keys().await?;
        }
        Ok(())
    }

    /// Runs every hook and loads the signing keys as the store has them now, whatever
    /// changed: for a node that fell too far behind the change feed to know what did.
    pub async fn apply_everything(&self) -> Result<(), ManagementError> {
        self.hooks.follow_store().await?;
        self.reload_signing_keys().await
    }

    /// The Management API's audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Whether `client_id` holds a grant on the Management API.
    async fn is_management_client(&self, client_id: &str) -> Result<bool, ManagementError> {
        Ok(self
            .store
            .grant_for(client_id, &self.audience)
            .await?
            .is_some())
    }
}
