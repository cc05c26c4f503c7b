//! Creating the things operators manage (applications, APIs, client grants, hooks) with
//! their validation. The demo uses these directly; the Management API is built on them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::hooks::{
    ExtensibilityPoint, FailurePolicy, HookEngine, HookLimits, LoadedHook, ModuleRejected,
    RegisteredHook, UnavailableHook,
};
use crate::model::{
    Api, ApiScope, Client, ClientGrant, Hook, HookScopePolicy, HookVersion, SecretKeyForm,
    SigningAlg, TokenDialect,
};
use crate::secrets::{
    AtRest, SEALED_HS256_SECRET, SecretBox, SecretHasher, new_client_secret, random_alphanumeric,
    random_bytes,
};
use crate::store::{Store, StoreError};

/// Why something could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// A field is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The module was refused.
    #[error(transparent)]
    Module(#[from] ModuleRejected),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something on the server broke (a stored secret that will not open, a module missing
    /// from the store, a task that died): not the caller's doing. The detail is for the log.
    #[error("{0}")]
    Internal(String),
}

/// The Management API's audience for an issuer: `<issuer>api/v2/`.
pub fn management_audience(issuer: &str) -> String {
    format!("{issuer}api/v2/")
}

/// Every scope of the Management API; the bootstrap admin application is granted them all.
pub const MANAGEMENT_SCOPES: &[&str] = &[
    "read:clients",
    "create:clients",
    "update:clients",
    "delete:clients",
    "read:resource_servers",
    "create:resource_servers",
    "update:resource_servers",
    "delete:resource_servers",
    "read:client_grants",
    "create:client_grants",
    "update:client_grants",
    "delete:client_grants",
    "read:hooks",
    "create:hooks",
    "update:hooks",
    "delete:hooks",
    "read:logs",
    "read:signing_keys",
    "update:signing_keys",
];

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A new machine-to-machine application allowed the client-credentials grant. Returns it and
/// the only copy of its secret.
pub fn create_client(
    store: &Store,
    hasher: &SecretHasher,
    name: &str,
    metadata: BTreeMap<String, String>,
) -> Result<(Client, String), ManageError> {
    let secret = new_client_secret();
    let client = create_client_with(
        store,
        hasher,
        name,
        metadata,
        &random_alphanumeric(32),
        &secret,
    )?;
    Ok((client, secret))
}

/// A new application with credentials chosen by the operator (the bootstrap admin from
/// `HOOKD_ADMIN_CLIENT_ID` / `HOOKD_ADMIN_CLIENT_SECRET`).
pub fn create_client_with(
    store: &Store,
    hasher: &SecretHasher,
    name: &str,
    metadata: BTreeMap<String, String>,
    client_id: &str,
    secret: &str,
) -> Result<Client, ManageError> {
    let client = new_client_record(hasher, name, metadata, client_id, secret)?;
    store.insert_client(&client)?;
    Ok(client)
}

/// A client-credentials application's record with `client_id` and `secret`, checked but not
/// stored (bootstrap stores it with the rest of the admin in one transaction).
pub fn new_client_record(
    hasher: &SecretHasher,
    name: &str,
    metadata: BTreeMap<String, String>,
    client_id: &str,
    secret: &str,
) -> Result<Client, ManageError> {
    if name.trim().is_empty() {
        return Err(ManageError::Invalid("name: must not be empty".to_owned()));
    }
    if client_id.is_empty() {
        return Err(ManageError::Invalid(
            "client_id: must not be empty".to_owned(),
        ));
    }
    if secret.len() < 16 {
        return Err(ManageError::Invalid(
            "client_secret: must be at least 16 characters".to_owned(),
        ));
    }
    Ok(Client {
        client_id: client_id.to_owned(),
        name: name.to_owned(),
        app_type: "non_interactive".to_owned(),
        metadata,
        grant_types: vec![crate::token::CLIENT_CREDENTIALS.to_owned()],
        secret_hash: hasher.hash(secret),
        secret_generation: 0,
    })
}

/// What an API is created with.
#[derive(Debug, Clone)]
pub struct NewApi {
    /// The audience clients ask for.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Scope values it defines.
    pub scopes: Vec<String>,
    /// Token lifetime in seconds.
    pub token_lifetime: u64,
    /// Signing algorithm.
    pub signing_alg: SigningAlg,
    /// Token layout.
    pub token_dialect: TokenDialect,
    /// How a hook's scopes apply.
    pub hook_scope_policy: HookScopePolicy,
}

impl NewApi {
    /// An API with Auth0's defaults: RS256, 86400 s, Auth0 token dialect, hook scopes replace.
    pub fn new(identifier: &str, name: &str, scopes: &[&str]) -> Self {
        NewApi {
            identifier: identifier.to_owned(),
            name: name.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            token_lifetime: 86_400,
            signing_alg: SigningAlg::RS256,
            token_dialect: TokenDialect::Auth0,
            hook_scope_policy: HookScopePolicy::Replace,
        }
    }
}

/// A new API, and its HS256 secret in clear when it has one (the only time it is shown,
/// with [`rotate_api_secret`]).
pub fn create_api(
    store: &Store,
    secret_box: &SecretBox,
    new: NewApi,
) -> Result<(Api, Option<String>), ManageError> {
    let (api, shown) = new_api_record(secret_box, new)?;
    store.insert_api(&api)?;
    Ok((api, shown))
}

/// An API's record (and its HS256 secret in clear when it has one), checked but not stored.
pub fn new_api_record(
    secret_box: &SecretBox,
    new: NewApi,
) -> Result<(Api, Option<String>), ManageError> {
    if new.identifier.trim().is_empty() {
        return Err(ManageError::Invalid(
            "identifier must not be empty".to_owned(),
        ));
    }
    if new.token_lifetime == 0 || new.token_lifetime > 2_592_000 {
        return Err(ManageError::Invalid(
            "token_lifetime must be between 1 and 2592000 seconds".to_owned(),
        ));
    }
    let id = random_alphanumeric(24);
    let (signing_secret, shown) = match new.signing_alg {
        SigningAlg::HS256 => {
            let (sealed, shown) = new_signing_secret(secret_box, &id);
            (Some(sealed), Some(shown))
        }
        _ => (None, None),
    };
    let api = Api {
        id,
        identifier: new.identifier,
        name: new.name,
        scopes: new
            .scopes
            .into_iter()
            .map(|value| ApiScope {
                value,
                description: String::new(),
            })
            .collect(),
        token_lifetime: new.token_lifetime,
        signing_alg: new.signing_alg,
        signing_secret,
        signing_secret_form: SecretKeyForm::Text,
        token_dialect: new.token_dialect,
        hook_scope_policy: new.hook_scope_policy,
    };
    Ok((api, shown))
}

/// A new HS256 secret for API `api_id`: 32 random bytes as base64url text (43 characters),
/// used as the key exactly as shown. Returns it sealed (to store) and in clear (to show once).
fn new_signing_secret(secret_box: &SecretBox, api_id: &str) -> (AtRest, String) {
    let shown = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let sealed = secret_box.seal_bytes(SEALED_HS256_SECRET, api_id, shown.as_bytes());
    (AtRest::Sealed(sealed), shown)
}

/// Replaces an HS256 API's signing secret; returns the API and the new secret in clear.
/// Tokens signed with the old secret stop verifying at once, as at Auth0.
pub fn rotate_api_secret(
    store: &Store,
    secret_box: &SecretBox,
    id: &str,
) -> Result<(Api, String), ManageError> {
    let mut api = store.api(id)?.ok_or_else(|| not_found("API", id))?;
    if api.signing_alg != SigningAlg::HS256 {
        return Err(ManageError::Invalid(
            "signing_secret: only an HS256 API has a signing secret".to_owned(),
        ));
    }
    let (sealed, shown) = new_signing_secret(secret_box, &api.id);
    api.signing_secret = Some(sealed);
    api.signing_secret_form = SecretKeyForm::Text;
    store.update_api(&api)?;
    Ok((api, shown))
}

/// An API's HS256 secret in clear, for tools on the server's own machine (tests, the demo):
/// the Management API shows it only on create and rotate.
pub fn reveal_signing_secret(
    secret_box: &SecretBox,
    api: &Api,
) -> Result<Option<String>, ManageError> {
    let Some(stored) = &api.signing_secret else {
        return Ok(None);
    };
    let bytes = secret_box
        .reveal(SEALED_HS256_SECRET, &api.id, stored)
        .map_err(|error| ManageError::Internal(format!("signing_secret: {error}")))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ManageError::Internal("signing_secret: not text".to_owned()))
}

/// A new grant of `scope` on `audience` to `client_id`; both must exist and every scope
/// must be one the API defines.
pub fn create_grant(
    store: &Store,
    client_id: &str,
    audience: &str,
    scope: &[&str],
) -> Result<ClientGrant, ManageError> {
    if store.client(client_id)?.is_none() {
        return Err(ManageError::Invalid(format!(
            "client_id: no client {client_id}"
        )));
    }
    let Some(api) = store.api_by_identifier(audience)? else {
        return Err(ManageError::Invalid(format!("audience: no API {audience}")));
    };
    if let Some(unknown) = scope
        .iter()
        .find(|s| !api.scopes.iter().any(|defined| defined.value == **s))
    {
        return Err(ManageError::Invalid(format!(
            "scope: {unknown} is not a scope of {audience}"
        )));
    }
    let grant = ClientGrant {
        id: format!("cgr_{}", random_alphanumeric(16)),
        client_id: client_id.to_owned(),
        audience: audience.to_owned(),
        scope: scope.iter().map(|s| (*s).to_owned()).collect(),
    };
    store.insert_grant(&grant)?;
    Ok(grant)
}

/// Whether a hook is what its trigger runs, as `GET /api/v2/hooks/{id}` shows it (`state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Enabled and running its active version.
    Running,
    /// Disabled.
    Disabled,
    /// Enabled, but no module has been uploaded: the trigger runs nothing.
    NoModule,
    /// Enabled, but it could not be loaded; its requests follow its failure policy.
    Unavailable(String),
    /// Enabled, and being switched to (a change is in progress).
    Pending,
}

impl RunState {
    /// The state's name on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Disabled => "disabled",
            RunState::NoModule => "no_module",
            RunState::Unavailable(_) => "unavailable",
            RunState::Pending => "pending",
        }
    }
}

/// Auth0's hook name rule: alphanumerics, spaces and dashes, not starting or ending with
/// a space or dash.
fn valid_hook_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || *b == b' ' || *b == b'-';
    !bytes.is_empty()
        && bytes.iter().all(inner)
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Refuses a name outside Auth0's hook-name pattern, naming the field.
fn check_hook_name(name: &str) -> Result<(), ManageError> {
    if valid_hook_name(name) {
        return Ok(());
    }
    Err(ManageError::Invalid(format!(
        "name: {name:?} must be letters, digits, spaces and dashes, starting and ending with \
         a letter or digit"
    )))
}

/// A new hook's record, with no module yet: validated name and limits, a fresh id, and
/// enabled as asked; when not asked, enabled only if it is the first hook of its trigger.
fn new_hook_record(
    store: &Store,
    name: &str,
    trigger: ExtensibilityPoint,
    enable: Option<bool>,
    limits: HookLimits,
    failure_policy: FailurePolicy,
) -> Result<Hook, ManageError> {
    check_hook_name(name)?;
    limits
        .validate()
        .map_err(|error| ManageError::Invalid(format!("limits: {error}")))?;
    let first_for_trigger = store.hooks()?.iter().all(|hook| hook.trigger != trigger);
    Ok(Hook {
        id: random_alphanumeric(20),
        name: name.to_owned(),
        trigger,
        enabled: enable.unwrap_or(first_for_trigger),
        versions: Vec::new(),
        active_version: None,
        limits,
        failure_policy,
        reuse_instances: false,
        secrets: BTreeMap::new(),
    })
}

/// A new hook from an uploaded module. The module is validated (compiled, checked against the
/// trigger's world) before anything is stored. The first hook of a trigger is enabled; later
/// ones start disabled unless `enable` asks otherwise.
pub fn create_hook(
    store: &Store,
    engine: &HookEngine,
    name: &str,
    trigger: ExtensibilityPoint,
    module: &[u8],
    enable: bool,
) -> Result<Hook, ManageError> {
    let mut hook = new_hook_record(
        store,
        name,
        trigger,
        Some(enable),
        HookLimits::default(),
        FailurePolicy::FailClosed,
    )?;
    engine.load(trigger, module, hook.limits)?;
    let sha256 = hex::encode(Sha256::digest(module));
    hook.versions.push(HookVersion {
        sha256: sha256.clone(),
        size: module.len() as u64,
        uploaded_at: unix_now(),
    });
    hook.active_version = Some(sha256);
    store.insert_hook(&hook, module)?;
    Ok(hook)
}

#[cfg(test)]
mod tests {
    use super::valid_hook_name;

    #[test]
    fn hook_names_follow_auth0s_pattern() {
        for good in ["seed", "add claims", "a-1", "A"] {
            assert!(valid_hook_name(good), "{good}");
        }
        for bad in ["", " seed", "seed-", "seed_hook", "séed"] {
            assert!(!valid_hook_name(bad), "{bad}");
        }
    }
}

/// The Management API's operations on hooks. Every change is written to the store first
/// (one transaction) and then applied to the live registry: enabling, uploading to an enabled
/// hook, or rolling it back swaps the running hook atomically (requests in flight finish on
/// the old one). Changes are serialised so the store and the registry never disagree.
#[derive(Debug)]
pub struct HookManager {
    store: Store,
    engine: HookEngine,
    registry: std::sync::Arc<crate::hooks::HookRegistry>,
    secret_box: Arc<SecretBox>,
    changes: tokio::sync::Mutex<()>,
}

/// What a hook may be created with (besides its module, uploaded separately).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    /// Unique name (Auth0's pattern).
    pub name: String,
    /// The extensibility point, e.g. `credentials-exchange`.
    #[serde(rename = "triggerId")]
    pub trigger_id: String,
    /// Whether it is enabled; when absent, the first hook of a trigger is and later ones
    /// are not. An explicit value is always honoured.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Auth0's npm `dependencies` map; accepted for compatibility, unused by Wasm hooks.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Per-hook limits; omitted fields keep their defaults.
    #[serde(default)]
    pub limits: Option<HookLimits>,
    /// What happens when it fails.
    #[serde(default)]
    pub failure_policy: Option<FailurePolicy>,
    /// Reuse live instances between calls (default false: a fresh instance per call).
    #[serde(default)]
    pub reuse_instances: Option<bool>,
}

/// A change to a hook. `triggerId` cannot be changed (Auth0 rejects it the same way).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookPatch {
    /// New name.
    pub name: Option<String>,
    /// Enable (pinning the active version) or disable.
    pub enabled: Option<bool>,
    /// Accepted for compatibility, unused.
    pub dependencies: Option<BTreeMap<String, String>>,
    /// New limits (whole object; omitted fields take their defaults).
    pub limits: Option<HookLimits>,
    /// New failure policy.
    pub failure_policy: Option<FailurePolicy>,
    /// Turn instance reuse on or off.
    pub reuse_instances: Option<bool>,
}

impl HookManager {
    /// A manager over the server's store, engine and registry.
    pub fn new(
        store: Store,
        engine: HookEngine,
        registry: std::sync::Arc<crate::hooks::HookRegistry>,
        secret_box: Arc<SecretBox>,
    ) -> Self {
        HookManager {
            store,
            engine,
            registry,
            secret_box,
            changes: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every enabled hook into the registry (at startup). A hook that cannot be loaded
    /// (its module missing, a secret that will not open) does not stop the server: it holds
    /// its trigger as unavailable, so its token requests fail or pass by its failure policy,
    /// and the Management API shows why ([`HookManager::run_state`]).
    pub async fn load_enabled(&self) -> Result<(), ManageError> {
        for point in ExtensibilityPoint::ALL {
            if let Some(hook) = self.store.enabled_hook(point)? {
                self.load_or_mark_unavailable(&hook).await;
            }
        }
        Ok(())
    }

    /// Puts `hook` (the trigger's enabled hook) in the registry, loaded or, when it cannot be
    /// loaded, as unavailable.
    async fn load_or_mark_unavailable(&self, hook: &Hook) {
        match self.prepare(hook).await {
            Ok(Some(loaded)) => {
                self.registry.enable(loaded);
                tracing::info!(hook = %hook.name, trigger = %hook.trigger, "hook enabled");
            }
            Ok(None) => {
                self.registry.disable(hook.trigger);
            }
            Err(error) => {
                tracing::error!(
                    hook = %hook.name,
                    trigger = %hook.trigger,
                    failure_policy = ?hook.failure_policy,
                    %error,
                    "the enabled hook cannot be loaded: its token requests follow its failure policy"
                );
                self.registry.mark_unavailable(UnavailableHook {
                    id: hook.id.clone(),
                    name: hook.name.clone(),
                    point: hook.trigger,
                    failure_policy: hook.failure_policy,
                    reason: error.to_string(),
                });
            }
        }
    }

    /// Whether `hook` is what its trigger runs right now, as the Management API shows it.
    pub fn run_state(&self, hook: &Hook) -> RunState {
        if !hook.enabled {
            return RunState::Disabled;
        }
        let Some(active) = &hook.active_version else {
            return RunState::NoModule;
        };
        match self.registry.current(hook.trigger).as_deref() {
            Some(RegisteredHook::Ready(loaded))
                if loaded.id == hook.id && loaded.sha256 == *active =>
            {
                RunState::Running
            }
            Some(RegisteredHook::Unavailable(unavailable)) if unavailable.id == hook.id => {
                RunState::Unavailable(unavailable.reason.clone())
            }
            _ => RunState::Pending,
        }
    }

    /// The hook's secrets in clear, for the running hook.
    fn open_secrets(&self, hook: &Hook) -> Result<BTreeMap<String, String>, ManageError> {
        hook.secrets
            .iter()
            .map(|(name, sealed)| {
                self.secret_box
                    .open(&hook.id, name, sealed)
                    .map(|value| (name.clone(), value))
                    .map_err(|error| ManageError::Internal(format!("secret {name}: {error}")))
            })
            .collect()
    }

    /// Every hook, optionally only those of one trigger or enabled state.
    pub fn list(
        &self,
        trigger: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Vec<Hook>, ManageError> {
        Ok(self
            .store
            .hooks()?
            .into_iter()
            .filter(|hook| trigger.is_none_or(|t| hook.trigger.trigger_id() == t))
            .filter(|hook| enabled.is_none_or(|e| hook.enabled == e))
            .collect())
    }

    /// One hook.
    pub fn get(&self, id: &str) -> Result<Hook, ManageError> {
        self.store
            .hook(id)?
            .ok_or_else(|| ManageError::Store(StoreError::NotFound(format!("no hook {id}"))))
    }

    /// What the registry should run for `hook` if it is the trigger's enabled hook: its
    /// active version loaded with its settings, or `None` when it is disabled or has no
    /// module yet. Called before a change is written, so a version that cannot be loaded
    /// fails the change and the store is left as it was.
    async fn prepare(&self, hook: &Hook) -> Result<Option<Arc<LoadedHook>>, ManageError> {
        let Some(sha) = hook.active_version.clone().filter(|_| hook.enabled) else {
            return Ok(None);
        };
        let running = self
            .registry
            .enabled(hook.trigger)
            .filter(|loaded| loaded.id == hook.id && loaded.sha256 == sha);
        let loaded = match running.filter(|loaded| loaded.limits == hook.limits) {
            // Same code and limits: no need to load again, only the settings change.
            Some(loaded) => (*loaded).clone(),
            None => {
                let module = self
                    .store
                    .module(&sha)?
                    .ok_or_else(|| ManageError::Internal(format!("module {sha} is missing")))?;
                let (engine, trigger, limits) = (self.engine.clone(), hook.trigger, hook.limits);
                tokio::task::spawn_blocking(move || engine.load(trigger, &module, limits))
                    .await
                    .map_err(|error| ManageError::Internal(error.to_string()))??
            }
        };
        self.with_settings(hook, loaded).map(Some)
    }

    /// `loaded` (a module of `hook`) with the hook's id, name, failure policy, instance reuse
    /// and secrets, ready for the registry.
    fn with_settings(
        &self,
        hook: &Hook,
        mut loaded: LoadedHook,
    ) -> Result<Arc<LoadedHook>, ManageError> {
        loaded.id = hook.id.clone();
        loaded.name = hook.name.clone();
        loaded.failure_policy = hook.failure_policy;
        self.engine
            .set_instance_reuse(&mut loaded, hook.reuse_instances);
        loaded.secrets = self.open_secrets(hook)?;
        Ok(Arc::new(loaded))
    }

    /// Makes the registry run exactly what the store now says is `trigger`'s enabled hook,
    /// after a change was written: `prepared` is what [`Self::prepare`] made for the hook the
    /// change wrote; any other enabled hook keeps running as it is (or is loaded, if it is not
    /// the one running). Nothing enabled, or an enabled hook with no module, runs nothing.
    async fn registry_follows_store(
        &self,
        trigger: ExtensibilityPoint,
        prepared: Option<Arc<LoadedHook>>,
    ) -> Result<(), ManageError> {
        let Some(enabled) = self.store.enabled_hook(trigger)? else {
            self.registry.disable(trigger);
            return Ok(());
        };
        match prepared.filter(|loaded| loaded.id == enabled.id) {
            Some(loaded) => {
                self.registry.enable(loaded);
            }
            // The change was to another hook (or the enabled one has no module yet): the
            // enabled one is (re)loaded as it is, and if it cannot be, it stays unavailable
            // rather than failing a change that is written.
            None => self.load_or_mark_unavailable(&enabled).await,
        }
        Ok(())
    }

    /// Creates a hook with no module yet. The first hook of a trigger is enabled (it runs as
    /// soon as a module is uploaded); later ones start disabled unless `enabled` asks.
    pub async fn create(&self, new: NewHook) -> Result<Hook, ManageError> {
        let _serialised = self.changes.lock().await;
        let trigger = ExtensibilityPoint::from_trigger_id(&new.trigger_id).ok_or_else(|| {
            ManageError::Invalid(format!("triggerId: unknown trigger {:?}", new.trigger_id))
        })?;
        let hook = new_hook_record(
            &self.store,
            &new.name,
            trigger,
            new.enabled,
            new.limits.unwrap_or_default(),
            new.failure_policy.unwrap_or_default(),
        )?;
        let hook = Hook {
            reuse_instances: new.reuse_instances.unwrap_or(false),
            ..hook
        };
        self.store.insert_hook(&hook, &[])?;
        // Enabling it disabled the trigger's other hooks; it has no module yet, so the
        // trigger now runs nothing.
        self.registry_follows_store(trigger, None).await?;
        Ok(hook)
    }

    /// Uploads a module as the hook's newest version and makes it the active one (live at
    /// once when the hook is enabled). A module that fails validation stores nothing.
    pub async fn upload(
        &self,
        id: &str,
        module: Vec<u8>,
    ) -> Result<(Hook, HookVersion), ManageError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id)?;
        let (engine, trigger, limits) = (self.engine.clone(), hook.trigger, hook.limits);
        let (module, checked) = tokio::task::spawn_blocking(move || {
            let checked = engine.load(trigger, &module, limits);
            (module, checked)
        })
        .await
        .map_err(|error| ManageError::Internal(error.to_string()))?;
        let loaded = checked?;
        let sha256 = hex::encode(Sha256::digest(&module));
        let version = HookVersion {
            sha256: sha256.clone(),
            size: module.len() as u64,
            uploaded_at: unix_now(),
        };
        hook.versions.retain(|existing| existing.sha256 != sha256);
        hook.versions.push(version.clone());
        hook.active_version = Some(sha256);
        let prepared = if hook.enabled {
            Some(self.with_settings(&hook, loaded)?)
        } else {
            None
        };
        self.store.add_hook_version(&hook, &module)?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok((hook, version))
    }

    /// Applies a patch. Enabling disables the trigger's other hooks in the same transaction.
    pub async fn update(&self, id: &str, patch: HookPatch) -> Result<Hook, ManageError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id)?;
        if let Some(name) = patch.name {
            check_hook_name(&name)?;
            hook.name = name;
        }
        if let Some(limits) = patch.limits {
            limits
                .validate()
                .map_err(|error| ManageError::Invalid(format!("limits: {error}")))?;
            hook.limits = limits;
        }
        if let Some(policy) = patch.failure_policy {
            hook.failure_policy = policy;
        }
        if let Some(reuse) = patch.reuse_instances {
            hook.reuse_instances = reuse;
        }
        if let Some(enabled) = patch.enabled {
            hook.enabled = enabled;
        }
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook)?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(hook)
    }

    /// Makes an earlier version the active one (live at once when the hook is enabled).
    pub async fn rollback(&self, id: &str, sha256: &str) -> Result<Hook, ManageError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id)?;
        if !hook.versions.iter().any(|version| version.sha256 == sha256) {
            return Err(ManageError::Invalid(format!(
                "version: {sha256} is not a version of this hook"
            )));
        }
        hook.active_version = Some(sha256.to_owned());
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook)?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(hook)
    }

    /// Deletes a hook (stopping it if it runs).
    pub async fn delete(&self, id: &str) -> Result<(), ManageError> {
        let _serialised = self.changes.lock().await;
        let hook = self.store.delete_hook(id)?;
        self.registry_follows_store(hook.trigger, None).await
    }
}

/// `POST`/`PATCH /api/v2/clients` bodies (Auth0 field names; unknown fields are refused).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    /// Display name (required on create).
    pub name: Option<String>,
    /// Free text (accepted, not stored).
    pub description: Option<String>,
    /// Auth0 application type.
    pub app_type: Option<String>,
    /// Auth0 `client_metadata`.
    pub client_metadata: Option<BTreeMap<String, String>>,
    /// Grant types the application may use.
    pub grant_types: Option<Vec<String>>,
}

const APP_TYPES: &[&str] = &["non_interactive", "regular_web", "spa", "native"];
const GRANT_TYPES: &[&str] = &[
    "client_credentials",
    "authorization_code",
    "implicit",
    "refresh_token",
    "password",
];

fn check_client_fields(body: &ClientBody) -> Result<(), ManageError> {
    let invalid = |m: String| Err(ManageError::Invalid(m));
    if let Some(name) = &body.name
        && (name.trim().is_empty() || name.len() > 255)
    {
        return invalid("name: must be 1 to 255 characters".to_owned());
    }
    if let Some(app_type) = &body.app_type
        && !APP_TYPES.contains(&app_type.as_str())
    {
        return invalid(format!("app_type: must be one of {}", APP_TYPES.join(", ")));
    }
    if let Some(metadata) = &body.client_metadata {
        if metadata.len() > 10 {
            return invalid("client_metadata: at most 10 keys".to_owned());
        }
        if let Some((key, _)) = metadata
            .iter()
            .find(|(k, v)| k.is_empty() || k.len() > 255 || v.len() > 255)
        {
            return invalid(format!(
                "client_metadata: key {key:?} and its value must be 1 to 255 characters"
            ));
        }
    }
    if let Some(unknown) = body
        .grant_types
        .iter()
        .flatten()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return invalid(format!("grant_types: unknown grant type {unknown:?}"));
    }
    Ok(())
}

/// Creates an application from a Management API body; returns it with its only secret.
pub fn create_client_from(
    store: &Store,
    hasher: &SecretHasher,
    body: ClientBody,
) -> Result<(Client, String), ManageError> {
    check_client_fields(&body)?;
    let name = body
        .name
        .clone()
        .ok_or_else(|| ManageError::Invalid("name: is required".to_owned()))?;
    let (mut client, secret) = create_client(
        store,
        hasher,
        &name,
        body.client_metadata.unwrap_or_default(),
    )?;
    if body.app_type.is_some() || body.grant_types.is_some() {
        client = store.modify_client(&client.client_id, |client| {
            if let Some(app_type) = &body.app_type {
                client.app_type = app_type.clone();
            }
            if let Some(grant_types) = &body.grant_types {
                client.grant_types = grant_types.clone();
            }
        })?;
    }
    Ok((client, secret))
}

fn not_found(what: &str, id: &str) -> ManageError {
    ManageError::Store(StoreError::NotFound(format!("no {what} {id}")))
}

/// Applies a patch to an application.
pub fn update_client(
    store: &Store,
    client_id: &str,
    body: ClientBody,
) -> Result<Client, ManageError> {
    check_client_fields(&body)?;
    // Only the fields the body names change, applied to the record as stored at the moment
    // of writing: a rotation that lands meanwhile is kept.
    store
        .modify_client(client_id, |client| {
            if let Some(name) = &body.name {
                client.name = name.clone();
            }
            if let Some(app_type) = &body.app_type {
                client.app_type = app_type.clone();
            }
            if let Some(metadata) = &body.client_metadata {
                client.metadata = metadata.clone();
            }
            if let Some(grant_types) = &body.grant_types {
                client.grant_types = grant_types.clone();
            }
        })
        .map_err(|error| match error {
            StoreError::NotFound(_) => not_found("client", client_id),
            other => other.into(),
        })
}

/// Gives an application a new secret; the old one stops working at once, and so do the
/// Management API tokens it got with the old one (its secret generation moves on).
pub fn rotate_client_secret(
    store: &Store,
    hasher: &SecretHasher,
    client_id: &str,
) -> Result<(Client, String), ManageError> {
    let secret = new_client_secret();
    let secret_hash = hasher.hash(&secret);
    let client = store
        .modify_client(client_id, |client| {
            client.secret_hash = secret_hash.clone();
            client.secret_generation += 1;
        })
        .map_err(|error| match error {
            StoreError::NotFound(_) => not_found("client", client_id),
            other => other.into(),
        })?;
    Ok((client, secret))
}

/// `POST`/`PATCH /api/v2/resource-servers` bodies.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiBody {
    /// The audience (required on create; cannot change).
    pub identifier: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// The scopes it defines.
    pub scopes: Option<Vec<ApiScope>>,
    /// Token lifetime in seconds (default 86400).
    pub token_lifetime: Option<u64>,
    /// Signing algorithm (default RS256).
    pub signing_alg: Option<SigningAlg>,
    /// `access_token` (Auth0) or `rfc9068_profile`.
    pub token_dialect: Option<TokenDialect>,
    /// `replace` or `intersect_with_grant`.
    pub hook_scope_policy: Option<HookScopePolicy>,
}

fn check_api_fields(body: &ApiBody) -> Result<(), ManageError> {
    if let Some(lifetime) = body.token_lifetime
        && (lifetime == 0 || lifetime > 2_592_000)
    {
        return Err(ManageError::Invalid(
            "token_lifetime: must be between 1 and 2592000 seconds".to_owned(),
        ));
    }
    if let Some(bad) = body
        .scopes
        .iter()
        .flatten()
        .find(|scope| !crate::model::is_scope_token(&scope.value))
    {
        return Err(ManageError::Invalid(format!(
            "scopes: {:?} is not a valid scope token",
            bad.value
        )));
    }
    Ok(())
}

/// Creates an API from a Management API body; returns it with its HS256 secret in clear.
pub fn create_api_from(
    store: &Store,
    secret_box: &SecretBox,
    body: ApiBody,
) -> Result<(Api, Option<String>), ManageError> {
    check_api_fields(&body)?;
    let identifier = body
        .identifier
        .clone()
        .ok_or_else(|| ManageError::Invalid("identifier: is required".to_owned()))?;
    let mut new = NewApi::new(
        &identifier,
        body.name.as_deref().unwrap_or(&identifier),
        &[],
    );
    new.scopes = body
        .scopes
        .iter()
        .flatten()
        .map(|scope| scope.value.clone())
        .collect();
    new.token_lifetime = body.token_lifetime.unwrap_or(new.token_lifetime);
    new.signing_alg = body.signing_alg.unwrap_or(new.signing_alg);
    new.token_dialect = body.token_dialect.unwrap_or(new.token_dialect);
    new.hook_scope_policy = body.hook_scope_policy.unwrap_or(new.hook_scope_policy);
    let (mut api, shown) = create_api(store, secret_box, new)?;
    if let Some(scopes) = body.scopes {
        api.scopes = scopes;
        store.update_api(&api)?;
    }
    Ok((api, shown))
}

/// Applies a patch to an API. Its identifier cannot change. Switching to HS256 gives it a
/// secret, returned in clear that once.
pub fn update_api(
    store: &Store,
    secret_box: &SecretBox,
    id: &str,
    body: ApiBody,
) -> Result<(Api, Option<String>), ManageError> {
    check_api_fields(&body)?;
    let mut api = store.api(id)?.ok_or_else(|| not_found("API", id))?;
    if body
        .identifier
        .as_ref()
        .is_some_and(|identifier| *identifier != api.identifier)
    {
        return Err(ManageError::Invalid(
            "identifier: cannot be changed".to_owned(),
        ));
    }
    if let Some(name) = body.name {
        api.name = name;
    }
    if let Some(scopes) = body.scopes {
        api.scopes = scopes;
    }
    if let Some(lifetime) = body.token_lifetime {
        api.token_lifetime = lifetime;
    }
    let mut shown = None;
    if let Some(alg) = body.signing_alg {
        if alg == SigningAlg::HS256 && api.signing_secret.is_none() {
            let (sealed, text) = new_signing_secret(secret_box, &api.id);
            api.signing_secret = Some(sealed);
            api.signing_secret_form = SecretKeyForm::Text;
            shown = Some(text);
        }
        api.signing_alg = alg;
    }
    if let Some(dialect) = body.token_dialect {
        api.token_dialect = dialect;
    }
    if let Some(policy) = body.hook_scope_policy {
        api.hook_scope_policy = policy;
    }
    store.update_api(&api)?;
    Ok((api, shown))
}

/// `POST`/`PATCH /api/v2/client-grants` bodies.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The client (required on create; cannot change).
    pub client_id: Option<String>,
    /// The API identifier (required on create; cannot change).
    pub audience: Option<String>,
    /// The scopes granted (required on create).
    pub scope: Option<Vec<String>>,
}

/// Creates a client grant from a Management API body.
pub fn create_grant_from(store: &Store, body: GrantBody) -> Result<ClientGrant, ManageError> {
    let required = |field: &str| ManageError::Invalid(format!("{field}: is required"));
    let client_id = body.client_id.ok_or_else(|| required("client_id"))?;
    let audience = body.audience.ok_or_else(|| required("audience"))?;
    let scope = body.scope.ok_or_else(|| required("scope"))?;
    let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
    create_grant(store, &client_id, &audience, &scope)
}

/// Replaces a grant's scopes; client and audience cannot change.
pub fn update_grant(store: &Store, id: &str, body: GrantBody) -> Result<ClientGrant, ManageError> {
    if body.client_id.is_some() || body.audience.is_some() {
        return Err(ManageError::Invalid(
            "client_id and audience of a grant cannot be changed".to_owned(),
        ));
    }
    let mut grant = store
        .grant(id)?
        .ok_or_else(|| not_found("client grant", id))?;
    if let Some(scope) = body.scope {
        let api = store
            .api_by_identifier(&grant.audience)?
            .ok_or_else(|| not_found("API", &grant.audience))?;
        if let Some(unknown) = scope
            .iter()
            .find(|s| !api.scopes.iter().any(|defined| defined.value == **s))
        {
            return Err(ManageError::Invalid(format!(
                "scope: {unknown} is not a scope of {}",
                grant.audience
            )));
        }
        grant.scope = scope;
    }
    store.update_grant(&grant)?;
    Ok(grant)
}

/// The most secrets one hook may have (Auth0 allowed 20).
pub const MAX_SECRETS_PER_HOOK: usize = 50;
/// The longest secret value, in bytes (Auth0 Actions allow 4 KB).
pub const MAX_SECRET_BYTES: usize = 4096;

/// How a secrets call changes a hook's secrets (Auth0's semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsChange {
    /// `POST`: add new names; an existing name is 409.
    Add,
    /// `PATCH`: change existing names; an unknown name is 404.
    Update,
}

impl HookManager {
    /// The names of a hook's secrets (values are never returned).
    pub fn secret_names(&self, id: &str) -> Result<Vec<String>, ManageError> {
        Ok(self.get(id)?.secrets.keys().cloned().collect())
    }

    /// Adds or updates secrets, sealed under the secrets key; the running hook sees them at once.
    pub async fn set_secrets(
        &self,
        id: &str,
        values: BTreeMap<String, String>,
        change: SecretsChange,
    ) -> Result<Vec<String>, ManageError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id)?;
        if values.is_empty() {
            return Err(ManageError::Invalid(
                "body: name at least one secret".to_owned(),
            ));
        }
        for (name, value) in &values {
            let valid_name = !name.is_empty()
                && name.len() <= 255
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_name {
                return Err(ManageError::Invalid(format!(
                    "{name:?}: secret names are letters, digits, _ and -"
                )));
            }
            if value.len() > MAX_SECRET_BYTES {
                return Err(ManageError::Invalid(format!(
                    "{name}: a secret value is at most {MAX_SECRET_BYTES} bytes"
                )));
            }
            let exists = hook.secrets.contains_key(name);
            match change {
                SecretsChange::Add if exists => {
                    return Err(ManageError::Store(StoreError::Conflict(format!(
                        "secret {name} already exists"
                    ))));
                }
                SecretsChange::Update if !exists => {
                    return Err(ManageError::Store(StoreError::NotFound(format!(
                        "secret {name} does not exist"
                    ))));
                }
                _ => {}
            }
        }
        for (name, value) in &values {
            let sealed = self.secret_box.seal(&hook.id, name, value);
            hook.secrets.insert(name.clone(), sealed);
        }
        if hook.secrets.len() > MAX_SECRETS_PER_HOOK {
            return Err(ManageError::Invalid(format!(
                "a hook has at most {MAX_SECRETS_PER_HOOK} secrets"
            )));
        }
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook)?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(hook.secrets.keys().cloned().collect())
    }

    /// Deletes secrets by name; an unknown name is 404 and deletes nothing.
    pub async fn delete_secrets(&self, id: &str, names: &[String]) -> Result<(), ManageError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id)?;
        if let Some(unknown) = names.iter().find(|name| !hook.secrets.contains_key(*name)) {
            return Err(ManageError::Store(StoreError::NotFound(format!(
                "secret {unknown} does not exist"
            ))));
        }
        for name in names {
            hook.secrets.remove(name);
        }
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook)?;
        self.registry_follows_store(hook.trigger, prepared).await
    }
}
