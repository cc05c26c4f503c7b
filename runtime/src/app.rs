//! Starting hookd's server: open the store, settle the tenant and signing keys, load the
//! enabled hooks into the registry, bind the listener. Used by `hookd serve`, the demo and the
//! tests (which bind 127.0.0.1:0).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::hooklog::HookLogBook;
use crate::hooks::{ArtifactCacheSettings, EngineSettings, HookEngine, HookRegistry};
use crate::http::{AppState, HttpLimits, Server};
use crate::manage::{self, HookManager, MANAGEMENT_SCOPES, NewApi, unix_now};
use crate::model::Tenant;
use crate::secrets::{
    AtRest, SEALED_CLIENT_SECRET_KEY, SEALED_HS256_SECRET, Sealed, SecretBox, SecretHasher,
    random_bytes,
};
use crate::store::Store;
use crate::token::TokenService;
use crate::token::keys::{self, KeyRing};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the store and (unless `cache_dir` says otherwise) the compiled-hook cache live.
    pub data_dir: PathBuf,
    /// Where compiled hooks are cached; `None` uses `DATA_DIR/compiled`. Servers of one
    /// hookd version can share it: entries are keyed by module hash and engine settings.
    pub cache_dir: Option<PathBuf>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Issuer URL; defaults to `http://<listen>/`. A trailing `/` is added when missing.
    pub issuer: Option<String>,
    /// Tenant name, used when the data directory is new.
    pub tenant_name: String,
    /// Concurrent hook invocations.
    pub hook_concurrency: u32,
    /// HTTP limits.
    pub http: HttpLimits,
    /// The key the store's secrets are sealed with: private signing keys, HS256 secrets, the
    /// client-secret HMAC key and hook secrets (base64url of 32 bytes, `HOOKD_SECRETS_KEY`).
    /// `None` uses `DATA_DIR/secrets.key`, created on first start.
    pub secrets_key: Option<String>,
    /// Credentials for the bootstrap admin application, instead of generated ones
    /// (`HOOKD_ADMIN_CLIENT_ID` / `HOOKD_ADMIN_CLIENT_SECRET`).
    pub admin_credentials: Option<(String, String)>,
}

impl ServeConfig {
    /// Defaults for a data directory and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServeConfig {
            data_dir,
            cache_dir: None,
            listen,
            issuer: None,
            tenant_name: "hookd".to_owned(),
            hook_concurrency: 16,
            http: HttpLimits::default(),
            admin_credentials: None,
            secrets_key: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Signing keys could not be generated or parsed.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// The hook engine could not be built.
    #[error(transparent)]
    Engine(#[from] crate::hooks::EngineError),
    /// The enabled hook's module is missing or no longer loads.
    #[error("the enabled hook {name} cannot be loaded: {reason}")]
    Hook {
        /// The hook's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The Management API or its admin application could not be created.
    #[error("could not bootstrap the Management API: {0}")]
    Bootstrap(String),
    /// The secrets key could not be loaded, or a sealed value did not open under it.
    #[error("secrets key: {0}")]
    Secrets(#[from] crate::secrets::SecretBoxError),
    /// The listener could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a running hookd holds on to.
#[derive(Debug)]
pub struct Prepared {
    /// The bound server, ready to run.
    pub server: Server,
    /// The address it is bound to.
    pub addr: SocketAddr,
    /// The store (also used by the demo to seed data).
    pub store: Store,
    /// The tenant.
    pub tenant: Tenant,
    /// Every hook's recent invocations.
    pub hook_log: Arc<HookLogBook>,
}

/// Opens the store, settles tenant and keys, loads the enabled hook and binds.
pub async fn prepare(config: ServeConfig) -> Result<Prepared, StartError> {
    let store = Store::open(&config.data_dir)?;
    let secret_box = Arc::new(load_secret_box(
        config.secrets_key.as_deref(),
        &config.data_dir,
    )?);
    let hasher = client_secret_hasher(&store, &secret_box)?;
    seal_stored_secrets(&store, &secret_box)?;

    let issuer = config
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{}/", config.listen));
    let issuer = if issuer.ends_with('/') {
        issuer
    } else {
        format!("{issuer}/")
    };
    let tenant = match store.tenant()? {
        Some(tenant) if tenant.issuer == issuer => tenant,
        Some(tenant) => Tenant { issuer, ..tenant },
        None => Tenant {
            name: config.tenant_name.clone(),
            issuer,
        },
    };
    store.put_tenant(&tenant)?;

    bootstrap_admin(&store, &secret_box, &hasher, &tenant, &config)?;

    let mut signing_keys = store.signing_keys()?;
    let missing = KeyRing::missing(&signing_keys);
    if !missing.is_empty() {
        // RSA generation takes ~100 ms per key: keep it off the async threads.
        let generate_box = secret_box.clone();
        let generated = tokio::task::spawn_blocking(move || {
            missing
                .into_iter()
                .map(|(alg, state)| keys::generate(alg, state, unix_now(), &generate_box))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| keys::KeyError::Generate("any"))??;
        signing_keys.extend(generated);
        store.put_signing_keys(&signing_keys)?;
    }
    // Retired keys no live token can have been signed with are dropped at start, as at
    // every rotation.
    let keep_retired = crate::token::longest_token_lifetime(&store)?;
    let kept = keys::drop_expired_retired(signing_keys.clone(), unix_now(), keep_retired);
    if kept != signing_keys {
        store.put_signing_keys(&kept)?;
        signing_keys = kept;
    }
    let key_ring = KeyRing::from_keys(&signing_keys, secret_box.clone())?;
    let cache_dir = config
        .cache_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("compiled"));
    let engine = HookEngine::new(EngineSettings {
        max_concurrency: config.hook_concurrency,
        cache: Some(artifact_cache(cache_dir, &secret_box)),
    })?;
    let registry = Arc::new(HookRegistry::new());
    let hooks = HookManager::new(
        store.clone(),
        engine.clone(),
        registry.clone(),
        secret_box.clone(),
    );
    hooks
        .load_enabled()
        .await
        .map_err(|error| StartError::Hook {
            name: "enabled hook".to_owned(),
            reason: error.to_string(),
        })?;

    let hook_log = Arc::new(HookLogBook::new());
    let hasher_for_admin = hasher.clone();
    let tokens = TokenService::new(
        store.clone(),
        hasher,
        key_ring,
        engine.clone(),
        registry.clone(),
        hook_log.clone(),
        tenant.clone(),
    );
    let server = Server::bind(
        config.listen,
        AppState::new(
            tokens,
            hooks,
            store.clone(),
            hasher_for_admin,
            secret_box,
            hook_log.clone(),
            config.http,
        ),
    )
    .await
    .map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = server.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    Ok(Prepared {
        server,
        addr,
        store,
        tenant,
        hook_log,
    })
}

/// The secrets key: `encoded` (`HOOKD_SECRETS_KEY`) when given, else `DATA_DIR/secrets.key`,
/// created on first start.
pub fn load_secret_box(
    encoded: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<SecretBox, StartError> {
    Ok(match encoded {
        Some(encoded) => SecretBox::from_encoded(encoded),
        None => SecretBox::load_or_create(&data_dir.join("secrets.key")),
    }?)
}

/// The client-secret hasher. Its key is made once per installation and stored sealed, so a
/// copied database cannot be used to test guessed secrets offline; a key stored in clear by
/// an earlier hookd is sealed in place (the hashes made under it stay valid).
pub fn client_secret_hasher(
    store: &Store,
    secret_box: &SecretBox,
) -> Result<SecretHasher, StartError> {
    let seal = |key: &[u8]| {
        serde_json::to_vec(&secret_box.seal_bytes(SEALED_CLIENT_SECRET_KEY, "", key))
            .map_err(|error| crate::store::StoreError::Storage(error.to_string()))
    };
    let stored = store.secret_hash_key(&seal(&random_bytes::<32>())?)?;
    let key = match serde_json::from_slice::<Sealed>(&stored) {
        Ok(sealed) => secret_box.open_bytes(SEALED_CLIENT_SECRET_KEY, "", &sealed)?,
        Err(_) => {
            store.replace_secret_hash_key(&stored, &seal(&stored)?)?;
            stored
        }
    };
    Ok(SecretHasher::new(&key))
}

/// Seals what an earlier hookd stored in clear: private signing keys and HS256 secrets.
fn seal_stored_secrets(store: &Store, secret_box: &SecretBox) -> Result<(), StartError> {
    let stored = store.signing_keys()?;
    let sealed: Vec<_> = stored
        .iter()
        .map(|key| keys::sealed_if_clear(key, secret_box).unwrap_or_else(|| key.clone()))
        .collect();
    if sealed != stored {
        store.put_signing_keys(&sealed)?;
        tracing::info!("sealed the private signing keys stored in clear");
    }
    for mut api in store.apis()? {
        if let Some(AtRest::Clear(text)) = &api.signing_secret {
            api.signing_secret = Some(AtRest::Sealed(secret_box.seal_bytes(
                SEALED_HS256_SECRET,
                &api.id,
                text.as_bytes(),
            )));
            store.update_api(&api)?;
            tracing::info!(api = %api.identifier, "sealed the HS256 secret stored in clear");
        }
    }
    Ok(())
}

/// How long a Management API token lives: an hour (Auth0 gives 24 hours). Every management
/// call re-checks the token's client, grant and secret generation, so revoking needs no
/// wait; the lifetime only bounds what a copied token is worth. The CLI gets a token per
/// command, and an hour covers a `logs --follow` session.
pub const MANAGEMENT_TOKEN_LIFETIME: u64 = 3600;

/// What `DIR/admin.json` holds: how the CLI (or a script) gets a Management API token.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AdminCredentials {
    /// The admin application's `client_id`.
    pub client_id: String,
    /// Its secret; absent when the operator supplied it through the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The Management API audience.
    pub audience: String,
    /// Where to get tokens.
    pub token_endpoint: String,
}

/// On first start (no Management API yet): creates the Management API, an admin application
/// granted every management scope, and writes its credentials to `DIR/admin.json` (0600).
fn bootstrap_admin(
    store: &Store,
    secret_box: &SecretBox,
    hasher: &SecretHasher,
    tenant: &Tenant,
    config: &ServeConfig,
) -> Result<(), StartError> {
    let audience = crate::http::management_audience(&tenant.issuer);
    if store.api_by_identifier(&audience)?.is_some() {
        return Ok(());
    }
    let bootstrap_error = |error: manage::ManageError| StartError::Bootstrap(error.to_string());
    let mut management_api = NewApi::new(&audience, "hookd Management API", MANAGEMENT_SCOPES);
    management_api.token_lifetime = MANAGEMENT_TOKEN_LIFETIME;
    manage::create_api(store, secret_box, management_api).map_err(bootstrap_error)?;
    let (client_id, secret, generated) = match &config.admin_credentials {
        Some((id, secret)) => (id.clone(), secret.clone(), false),
        None => (
            crate::secrets::random_alphanumeric(32),
            crate::secrets::new_client_secret(),
            true,
        ),
    };
    manage::create_client_with(
        store,
        hasher,
        "hookd admin",
        Default::default(),
        &client_id,
        &secret,
    )
    .map_err(bootstrap_error)?;
    manage::create_grant(store, &client_id, &audience, MANAGEMENT_SCOPES)
        .map_err(bootstrap_error)?;
    let credentials = AdminCredentials {
        client_id,
        client_secret: generated.then_some(secret),
        audience,
        token_endpoint: format!("{}oauth/token", tenant.issuer),
    };
    let path = config.data_dir.join("admin.json");
    let text = serde_json::to_string_pretty(&credentials)
        .map_err(|error| StartError::Bootstrap(error.to_string()))?;
    crate::files::write_private(&path, text.as_bytes()).map_err(|error| {
        StartError::Bootstrap(format!("could not write {}: {error}", path.display()))
    })?;
    tracing::info!(path = %path.display(), "created the Management API and its admin application");
    Ok(())
}

/// The server's compiled-hook cache in `dir`, its artifacts authenticated under a key derived
/// from the installation's secrets key: a copied or planted artifact never runs.
pub fn artifact_cache(dir: PathBuf, secret_box: &SecretBox) -> ArtifactCacheSettings {
    ArtifactCacheSettings::new(dir, &secret_box.subkey("hookd compiled-artifact cache"))
}
