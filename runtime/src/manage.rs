//! Creating the things operators manage (applications, APIs, client grants, hooks) with
//! their validation. The demo uses these directly; the Management API is built on them.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::hooks::{ExtensibilityPoint, FailurePolicy, HookEngine, HookLimits, ModuleRejected};
use crate::model::{
    Api, ApiScope, Client, ClientGrant, Hook, HookScopePolicy, HookVersion, SigningAlg,
    TokenDialect,
};
use crate::secrets::{SecretHasher, new_client_secret, random_alphanumeric, random_bytes};
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
}

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
    if name.trim().is_empty() {
        return Err(ManageError::Invalid("name must not be empty".to_owned()));
    }
    let secret = new_client_secret();
    let client = Client {
        client_id: random_alphanumeric(32),
        name: name.to_owned(),
        app_type: "non_interactive".to_owned(),
        metadata,
        grant_types: vec![crate::token::CLIENT_CREDENTIALS.to_owned()],
        secret_hash: hasher.hash(&secret),
    };
    store.insert_client(&client)?;
    Ok((client, secret))
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

/// A new API.
pub fn create_api(store: &Store, new: NewApi) -> Result<Api, ManageError> {
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
    let api = Api {
        id: random_alphanumeric(24),
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
        signing_secret: (new.signing_alg == SigningAlg::HS256)
            .then(|| URL_SAFE_NO_PAD.encode(random_bytes::<32>())),
        token_dialect: new.token_dialect,
        hook_scope_policy: new.hook_scope_policy,
    };
    store.insert_api(&api)?;
    Ok(api)
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
    if !valid_hook_name(name) {
        return Err(ManageError::Invalid(format!(
            "name: {name:?} must be letters, digits, spaces and dashes, starting and ending \
             with a letter or digit"
        )));
    }
    let limits = HookLimits::default();
    engine.load(trigger, module, limits)?;
    let first_for_trigger = store.hooks()?.iter().all(|hook| hook.trigger != trigger);
    let sha256 = hex::encode(Sha256::digest(module));
    let hook = Hook {
        id: random_alphanumeric(20),
        name: name.to_owned(),
        trigger,
        enabled: enable || first_for_trigger,
        versions: vec![HookVersion {
            sha256: sha256.clone(),
            size: module.len() as u64,
            uploaded_at: unix_now(),
        }],
        active_version: Some(sha256),
        limits,
        failure_policy: FailurePolicy::FailClosed,
    };
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
