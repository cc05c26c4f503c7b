//! Starting hookd's server: open the store, settle the tenant and signing keys, load the
//! enabled hooks into the registry, bind the listener. Used by `hookd serve`, the demo and the
//! tests (which bind 127.0.0.1:0).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::unix_now;
use crate::hooklog::HookLogBook;
use crate::hooks::{ArtifactCacheSettings, EngineSettings, HookEngine};
use crate::http::{AppState, HttpLimits, Server};
use crate::keys::{self, KeyRing, LiveKeys};
use crate::management::ManagementError;
use crate::management::{self, Management, ManagementParts, NewApi};
use crate::metrics::Metrics;
use crate::model::{MANAGEMENT_SCOPES, NodeReport, Tenant};
use crate::registry::HookRegistry;
use crate::secrets::{
    AtRest, SEALED_CLIENT_SECRET_KEY, SEALED_HS256_SECRET, Sealed, SecretBox, SecretHasher,
    random_bytes,
};
use crate::store::postgres::ChangesSince;
use crate::store::{RecordStore, Store};
use crate::token::{TokenParts, TokenService};

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
    /// Address to serve `GET /metrics` on (Prometheus); `None`, the default, serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// Issuer URL. A new data directory takes it (default `http://<address bound>/`); an existing
    /// one keeps the issuer it has, and a different one here refuses to start unless
    /// `change_issuer` says to move. A trailing `/` is added when missing.
    pub issuer: Option<String>,
    /// Move an existing data directory to `issuer`: the tenant, the Management API's audience
    /// and its grants, and `admin.json` follow; tokens issued before stop verifying.
    pub change_issuer: bool,
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
    /// A PostgreSQL URL: keep the store there instead of sled in the data directory
    /// (`HOOKD_DATABASE_URL`). Requires `secrets_key`.
    pub database: Option<String>,
    /// With `database`: refuse tokens (503) once this node has not heard from the database for
    /// this many seconds, rather than serve from a snapshot that may be stale. `None`, the
    /// default, serves from the snapshot however long the database is away.
    pub max_staleness: Option<u64>,
    /// With `database`: how many revisions of the change feed each write keeps; a node further
    /// behind (stopped, cut off) reloads everything when it comes back.
    pub change_history: i64,
    /// With `database`: CA certificates (PEM) the database's TLS certificate may be signed by,
    /// besides the system's.
    pub database_ca_file: Option<PathBuf>,
    /// How this node is named in the list of nodes (`GET /api/v2/nodes`); `None` names it
    /// `<host name>:<port>`.
    pub node_name: Option<String>,
}

/// Connections each node keeps to PostgreSQL at most.
const DATABASE_CONNECTIONS: usize = 8;

impl ServeConfig {
    /// Defaults for a data directory and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServeConfig {
            data_dir,
            cache_dir: None,
            listen,
            metrics_listen: None,
            issuer: None,
            change_issuer: false,
            tenant_name: "hookd".to_owned(),
            hook_concurrency: 16,
            http: HttpLimits::default(),
            admin_credentials: None,
            secrets_key: None,
            database: None,
            max_staleness: None,
            change_history: crate::store::postgres::CHANGE_HISTORY,
            node_name: None,
            database_ca_file: None,
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
    /// The store could not be read while loading the enabled hooks.
    #[error("could not read the enabled hooks: {0}")]
    Hooks(String),
    /// The configured issuer is not the data directory's, and no change was asked for.
    #[error(
        "the data directory's issuer is {stored}, not {configured}; changing the issuer \
         invalidates every token issued so far: to do it, start once with --change-issuer"
    )]
    IssuerChanged {
        /// The issuer in the store.
        stored: String,
        /// The issuer configured.
        configured: String,
    },
    /// The Management API or its admin application could not be created.
    #[error("could not bootstrap the Management API: {0}")]
    Bootstrap(String),
    /// The secrets key could not be loaded, or a sealed value did not open under it.
    #[error("secrets key: {0}")]
    Secrets(#[from] crate::secrets::SecretBoxError),
    /// PostgreSQL could not be used.
    #[error(transparent)]
    Database(#[from] crate::store::postgres::PostgresError),
    /// A shared store needs the shared secrets key.
    #[error(
        "with --database, every node must hold the same secrets key: set HOOKD_SECRETS_KEY \
         or --secrets-key-file (a key made in one node's data directory would differ on the next)"
    )]
    SharedSecretsKey,
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
    /// The metrics listener's address, when there is one.
    pub metrics_addr: Option<SocketAddr>,
    /// The store (also used by the demo to seed data).
    pub store: Store,
    /// The tenant.
    pub tenant: Tenant,
    /// Every hook's recent invocations.
    pub hook_log: Arc<HookLogBook>,
}

/// Opens the store, settles tenant and keys, loads the enabled hook and binds.
pub async fn prepare(config: ServeConfig) -> Result<Prepared, StartError> {
    // Bound first: the default issuer names the address really bound (port 0 picks one).
    let bind_error = |source| StartError::Bind {
        addr: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let metrics_listener = match config.metrics_listen {
        Some(metrics_addr) => Some(tokio::net::TcpListener::bind(metrics_addr).await.map_err(
            |source| StartError::Bind {
                addr: metrics_addr,
                source,
            },
        )?),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()
        .map_err(bind_error)?;
    let store = match &config.database {
        None => Store::open(&config.data_dir)?,
        Some(url) => {
            if config.secrets_key.is_none() {
                return Err(StartError::SharedSecretsKey);
            }
            std::fs::create_dir_all(&config.data_dir).map_err(|error| {
                crate::store::StoreError::Storage(format!(
                    "could not create {}: {error}",
                    config.data_dir.display()
                ))
            })?;
            Store::Postgres(
                crate::store::postgres::PgStore::connect_with_tls(
                    url,
                    DATABASE_CONNECTIONS,
                    crate::store::postgres::PostgresTimeouts::default(),
                    crate::store::postgres::tls_connector(config.database_ca_file.as_deref())?,
                )
                .await?
                .keep_change_history(config.change_history),
            )
        }
    };
    let secret_box = Arc::new(load_secret_box(
        config.secrets_key.as_deref(),
        &config.data_dir,
    )?);
    // Nodes starting together on one database settle the tenant, the admin and the first
    // signing keys one after the other: the first makes them, the others find them.
    let startup_lock = match &store {
        Store::Postgres(shared) => Some(shared.startup_lock().await?),
        Store::Sled(_) => None,
    };
    // Read again under the lock, so this node sees what a node that started first made. What
    // it has read, and reads from here on, includes every change up to this revision; the
    // change feed carries the rest.
    let start_revision = match &store {
        Store::Postgres(shared) => Some(shared.reload_snapshot().await?),
        Store::Sled(_) => None,
    };
    let hasher = client_secret_hasher(&store, &secret_box).await?;
    seal_stored_secrets(&store, &secret_box).await?;

    let tenant = settle_tenant(&store, &config, addr).await?;
    refresh_admin_file(&tenant, &config.data_dir)?;
    bootstrap_admin(&store, &secret_box, &hasher, &tenant, &config).await?;

    let mut signing_keys = store.signing_keys().await?;
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
        store.put_signing_keys(&signing_keys).await?;
    }
    // Retired keys no live token can have been signed with are dropped at start, as at
    // every rotation.
    let keep_retired = management::longest_token_lifetime(&store).await?;
    let kept = keys::drop_expired_retired(signing_keys.clone(), unix_now(), keep_retired);
    if kept != signing_keys {
        store.put_signing_keys(&kept).await?;
        signing_keys = kept;
    }
    drop(startup_lock);
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
    let keys = LiveKeys::new(key_ring);
    let hook_log = Arc::new(HookLogBook::new());
    let metrics = Arc::new(Metrics::new());
    {
        let metrics = metrics.clone();
        store.observe_writes(move |took| metrics.store_write(took.as_secs_f64()));
    }
    let management = Arc::new(Management::new(ManagementParts {
        store: store.clone(),
        hasher: hasher.clone(),
        secret_box,
        keys: keys.clone(),
        hook_log: hook_log.clone(),
        engine: engine.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        tenant: tenant.clone(),
        node: NodeReport {
            name: config
                .node_name
                .clone()
                .unwrap_or_else(|| default_node_name(addr)),
            address: addr.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: unix_now(),
            applied_revision: None,
            heartbeat_at: unix_now(),
        },
    }));
    management
        .load_enabled_hooks()
        .await
        .map_err(|error| StartError::Hooks(error.to_string()))?;
    if let (Store::Postgres(shared), Some(revision)) = (&store, start_revision) {
        tokio::spawn(follow_changes(
            Arc::downgrade(&management),
            shared.clone(),
            revision,
        ));
        // Each process writes its log entries under a name of its own, so that it relays
        // every other node's entries to its followers and never its own twice.
        let writer = format!(
            "{}#{}",
            management.node_report(None, 0).name,
            crate::secrets::random_alphanumeric(8)
        );
        if let Some(entries) = hook_log.ship(SHIPPING_QUEUE) {
            tokio::spawn(ship_hook_logs(
                entries,
                Arc::downgrade(&hook_log),
                shared.clone(),
                writer.clone(),
                metrics.clone(),
            ));
        }
        tokio::spawn(relay_hook_logs(
            Arc::downgrade(&hook_log),
            shared.clone(),
            writer,
        ));
    }
    if let Some(withdrawals) = registry.withdrawals() {
        tokio::spawn(record_canary_withdrawals(
            Arc::downgrade(&management),
            withdrawals,
        ));
    }

    if let Store::Postgres(shared) = &store {
        // Heard from just now: the snapshot was read under the startup lock.
        shared.heard_from_database(unix_now());
    }
    let tokens = TokenService::new(TokenParts {
        max_staleness: config.max_staleness,
        store: store.clone(),
        hasher,
        keys,
        engine,
        registry,
        hook_log: hook_log.clone(),
        metrics: metrics.clone(),
        tenant: tenant.clone(),
    });
    let mut server = Server::on(
        listener,
        AppState::new(tokens, management, metrics, config.http),
    );
    if let Some(listener) = metrics_listener {
        server = server.with_metrics(listener);
    }
    Ok(Prepared {
        server,
        addr,
        metrics_addr,
        store,
        tenant,
        hook_log,
    })
}

/// How often a node asks PostgreSQL for the current revision, in case it missed a
/// notification.
const CHANGES_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows the change feed from revision `applied` until the server is gone: listens for
/// notifications (listening again when the connection ends), polls the revision as a safety
/// net, and applies what changed after the last revision applied: to the store's snapshot
/// (what the token path reads), then to the running hooks and keys. A change that cannot be
/// applied yet (the database is unreachable, a module will not compile) is tried again at the
/// next notification or poll.
async fn follow_changes(
    management: std::sync::Weak<Management>,
    store: crate::store::postgres::PgStore,
    mut applied: i64,
) {
    let mut notified: Option<tokio::sync::mpsc::Receiver<i64>> = None;
    let mut poll = tokio::time::interval(CHANGES_POLL);
    // What went wrong, while following does not work.
    let mut trouble: Option<String> = None;
    let mut reported_at = 0;
    loop {
        if notified.is_none() {
            notified = match store.listen().await {
                Ok(receiver) => Some(receiver),
                Err(error) => {
                    if trouble.is_none() {
                        tracing::warn!(%error, "cannot listen for changes; polling for them");
                    }
                    None
                }
            };
        }
        match notified.as_mut() {
            Some(receiver) => {
                tokio::select! {
                    revision = receiver.recv() => {
                        if revision.is_none() {
                            tracing::warn!("the change feed's connection ended; listening again");
                            notified = None;
                        }
                    }
                    _ = poll.tick() => {}
                }
            }
            None => {
                poll.tick().await;
            }
        }
        let Some(management) = management.upgrade() else {
            return;
        };
        let reached = store.changes_since(applied).await;
        if reached.is_ok() {
            store.heard_from_database(unix_now());
        }
        let applying = async {
            match reached? {
                ChangesSince::Changed { current, .. } if current == applied => Ok(current),
                ChangesSince::Changed { current, changed } => {
                    store.refresh(&changed).await?;
                    management.apply_changes(&changed).await?;
                    tracing::debug!(revision = current, "applied changes");
                    Ok(current)
                }
                ChangesSince::Pruned { current } => {
                    tracing::warn!(
                        applied,
                        current,
                        "this node fell behind the change history the database keeps; \
                         reloading everything"
                    );
                    let reloaded = store.reload_snapshot().await?;
                    management.apply_everything().await?;
                    Ok(reloaded)
                }
            }
        };
        match applying.await {
            Ok(reached) => {
                applied = reached;
                if trouble.take().is_some() {
                    tracing::info!(revision = applied, "the change feed is caught up again");
                }
            }
            Err(error) => {
                let error: ManagementError = error;
                // Said once when it starts, not at every poll while it lasts.
                if trouble.replace(error.to_string()).is_none() {
                    tracing::warn!(%error, "cannot follow the change feed; trying again every second");
                }
            }
        }
        let now = unix_now();
        if trouble.is_none() && now.saturating_sub(reported_at) >= management::HEARTBEAT_EVERY {
            match store
                .report_node(&management.node_report(Some(applied), now))
                .await
            {
                Ok(()) => reported_at = now,
                Err(error) => tracing::debug!(%error, "could not report this node"),
            }
        }
    }
}

/// This node's name unless one is given: the host's name and the port it serves on.
fn default_node_name(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "hookd".to_owned());
    format!("{host}:{}", addr.port())
}

/// Entries waiting to be written to the shared database at most; beyond, new ones are dropped
/// (and counted) rather than slowing the token path.
const SHIPPING_QUEUE: usize = 10_000;
/// Entries written in one transaction at most.
const SHIPPING_BATCH: usize = 500;
/// How long the first entry of a batch waits for others.
const SHIPPING_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);
/// How often a node with followers asks for other nodes' entries.
const RELAY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Writes the hook log entries this node records to the shared database, in batches, off the
/// token path, until the log book is gone. A batch that cannot be written (the database is
/// away) is tried again every second; meanwhile the queue fills and then drops new entries,
/// which the metrics count.
async fn ship_hook_logs(
    mut entries: tokio::sync::mpsc::Receiver<crate::hooklog::HookLogEntry>,
    book: std::sync::Weak<HookLogBook>,
    store: crate::store::postgres::PgStore,
    writer: String,
    metrics: Arc<Metrics>,
) {
    let node = writer.split('#').next().unwrap_or_default().to_owned();
    let take_dropped = || book.upgrade().map_or(0, |book| book.take_dropped());
    while let Some(first) = entries.recv().await {
        let mut batch = vec![first];
        let window = tokio::time::sleep(SHIPPING_WINDOW);
        tokio::pin!(window);
        while batch.len() < SHIPPING_BATCH {
            tokio::select! {
                next = entries.recv() => match next {
                    Some(entry) => batch.push(entry),
                    None => break,
                },
                () = &mut window => break,
            }
        }
        let rows: Vec<(String, String)> = batch
            .into_iter()
            .filter_map(|mut entry| {
                entry.node = Some(node.clone());
                let text = serde_json::to_string(&entry).ok()?;
                Some((entry.hook_id, text))
            })
            .collect();
        let mut failing = false;
        loop {
            match store
                .append_hook_logs(&writer, &rows, crate::hooklog::ENTRIES_PER_HOOK)
                .await
            {
                Ok(()) => {
                    metrics.hook_log_shipping(rows.len() as u64, take_dropped());
                    break;
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "cannot write hook log entries to the database; trying again every second");
                        failing = true;
                    }
                    metrics.hook_log_shipping(0, take_dropped());
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Passes the entries other nodes write to the shared database to this node's `?follow`
/// streams, while there are any, until the log book is gone.
async fn relay_hook_logs(
    book: std::sync::Weak<HookLogBook>,
    store: crate::store::postgres::PgStore,
    writer: String,
) {
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(RELAY_EVERY);
    loop {
        tick.tick().await;
        let Some(book) = book.upgrade() else {
            return;
        };
        if book.followers() == 0 {
            seen = None;
            continue;
        }
        let after = match seen {
            Some(after) => after,
            None => {
                // Followers see what is written from now on.
                seen = store.last_hook_log().await.ok();
                continue;
            }
        };
        // The database away only pauses the relay; the next tick asks again.
        if let Ok(rows) = store.hook_logs_after(after, &writer, SHIPPING_BATCH).await {
            for (sequence, text) in rows {
                seen = Some(sequence);
                if let Ok(entry) = serde_json::from_str(&text) {
                    book.relay(entry);
                }
            }
        }
    }
}

/// Records each canary the token path withdraws, until the server is gone (the task holds
/// the management service weakly, so it never keeps the store open).
async fn record_canary_withdrawals(
    management: std::sync::Weak<Management>,
    mut withdrawals: tokio::sync::mpsc::UnboundedReceiver<crate::registry::CanaryWithdrawal>,
) {
    while let Some(withdrawal) = withdrawals.recv().await {
        let Some(management) = management.upgrade() else {
            return;
        };
        let hook_id = withdrawal.hook_id.clone();
        if let Err(error) = management
            .record_canary_withdrawal(withdrawal, crate::clock::unix_now())
            .await
        {
            tracing::error!(hook = %hook_id, %error, "the withdrawn canary could not be recorded");
        }
    }
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
pub async fn client_secret_hasher(
    store: &impl RecordStore,
    secret_box: &SecretBox,
) -> Result<SecretHasher, StartError> {
    let seal = |key: &[u8]| {
        serde_json::to_vec(&secret_box.seal_bytes(SEALED_CLIENT_SECRET_KEY, "", key))
            .map_err(|error| crate::store::StoreError::Storage(error.to_string()))
    };
    let stored = store.secret_hash_key(&seal(&random_bytes::<32>())?).await?;
    let key = match serde_json::from_slice::<Sealed>(&stored) {
        Ok(sealed) => secret_box.open_bytes(SEALED_CLIENT_SECRET_KEY, "", &sealed)?,
        Err(_) => {
            store
                .replace_secret_hash_key(&stored, &seal(&stored)?)
                .await?;
            stored
        }
    };
    Ok(SecretHasher::new(&key))
}

/// Seals what an earlier hookd stored in clear: private signing keys and HS256 secrets.
async fn seal_stored_secrets(store: &Store, secret_box: &SecretBox) -> Result<(), StartError> {
    let stored = store.signing_keys().await?;
    let sealed: Vec<_> = stored
        .iter()
        .map(|key| keys::sealed_if_clear(key, secret_box).unwrap_or_else(|| key.clone()))
        .collect();
    if sealed != stored {
        store.put_signing_keys(&sealed).await?;
        tracing::info!("sealed the private signing keys stored in clear");
    }
    for mut api in store.apis().await? {
        if let Some(AtRest::Clear(text)) = &api.signing_secret {
            api.signing_secret = Some(AtRest::Sealed(secret_box.seal_bytes(
                SEALED_HS256_SECRET,
                &api.id,
                text.as_bytes(),
            )));
            store.update_api(&api).await?;
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

/// The tenant to serve. A new store takes the configured issuer (or `http://<addr>/`, the
/// address bound); a stored one keeps its issuer unless a different one is configured with
/// `change_issuer`, which moves the Management API's audience and its grants in one
/// transaction.
async fn settle_tenant(
    store: &Store,
    config: &ServeConfig,
    addr: std::net::SocketAddr,
) -> Result<Tenant, StartError> {
    let configured = config.issuer.as_deref().map(|issuer| {
        if issuer.ends_with('/') {
            issuer.to_owned()
        } else {
            format!("{issuer}/")
        }
    });
    let Some(stored) = store.tenant().await? else {
        return Ok(Tenant {
            name: config.tenant_name.clone(),
            issuer: configured.unwrap_or_else(|| format!("http://{addr}/")),
        });
    };
    let Some(issuer) = configured.filter(|issuer| *issuer != stored.issuer) else {
        return Ok(stored);
    };
    if !config.change_issuer {
        return Err(StartError::IssuerChanged {
            stored: stored.issuer,
            configured: issuer,
        });
    }
    let tenant = Tenant {
        issuer,
        ..stored.clone()
    };
    let from = crate::http::management_audience(&stored.issuer);
    let to = crate::http::management_audience(&tenant.issuer);
    store
        .change_issuer(&tenant, &from, &to)
        .await
        .map_err(|error| StartError::Bootstrap(format!("changing the issuer: {error}")))?;
    tracing::warn!(
        from = %stored.issuer,
        to = %tenant.issuer,
        "changed the issuer: tokens issued under the old one no longer verify"
    );
    Ok(tenant)
}

/// Points an existing `admin.json` at the tenant's Management API audience and token
/// endpoint when it names others (after an issuer change, even one interrupted between the
/// store and the file). A file that is missing or unreadable is left alone.
fn refresh_admin_file(tenant: &Tenant, data_dir: &std::path::Path) -> Result<(), StartError> {
    let path = data_dir.join("admin.json");
    let Ok(text) = std::fs::read(&path) else {
        return Ok(());
    };
    let Ok(mut credentials) = serde_json::from_slice::<AdminCredentials>(&text) else {
        return Ok(());
    };
    let audience = crate::http::management_audience(&tenant.issuer);
    let token_endpoint = crate::http::token_endpoint(&tenant.issuer);
    if credentials.audience == audience && credentials.token_endpoint == token_endpoint {
        return Ok(());
    }
    credentials.audience = audience;
    credentials.token_endpoint = token_endpoint;
    write_admin_file(&path, &credentials)
}

fn write_admin_file(
    path: &std::path::Path,
    credentials: &AdminCredentials,
) -> Result<(), StartError> {
    let text = serde_json::to_string_pretty(credentials)
        .map_err(|error| StartError::Bootstrap(error.to_string()))?;
    crate::files::write_private(path, text.as_bytes()).map_err(|error| {
        StartError::Bootstrap(format!("could not write {}: {error}", path.display()))
    })
}

/// Whether the Management API `api` defines every management scope and some application
/// holds them all.
async fn has_admin(store: &Store, api: &crate::model::Api) -> Result<bool, StartError> {
    let defines_all = MANAGEMENT_SCOPES
        .iter()
        .all(|scope| api.scopes.iter().any(|defined| defined.value == *scope));
    Ok(defines_all
        && store.grants().await?.iter().any(|grant| {
            grant.audience == api.identifier
                && MANAGEMENT_SCOPES
                    .iter()
                    .all(|scope| grant.scope.iter().any(|held| held == scope))
        }))
}

/// Adds the management scopes a newer hookd introduced to the Management API and to every
/// application that held all the scopes it had before (the admin); returns whether there was
/// such an application. Without this, an upgrade would make a second admin rather than give
/// the first the new scopes. Each write is whole, and a start that stops between them finishes
/// the job at the next.
async fn grant_new_management_scopes(
    store: &Store,
    api: &crate::model::Api,
) -> Result<bool, StartError> {
    let defined: Vec<&str> = api
        .scopes
        .iter()
        .map(|scope| scope.value.as_str())
        .collect();
    let held_everything = |grant: &crate::model::ClientGrant| {
        grant.audience == api.identifier
            && defined
                .iter()
                .all(|scope| grant.scope.iter().any(|held| held == scope))
    };
    let admins: Vec<_> = store
        .grants()
        .await?
        .into_iter()
        .filter(held_everything)
        .collect();
    if admins.is_empty() {
        return Ok(false);
    }
    // The grants first: a start that stops before the API is written finds the admin again
    // (it holds every scope the API defines) and writes the API then.
    for mut grant in admins {
        let held = grant.scope.len();
        for scope in MANAGEMENT_SCOPES {
            if !grant.scope.iter().any(|value| value == scope) {
                grant.scope.push((*scope).to_owned());
            }
        }
        if grant.scope.len() != held {
            store.update_grant(&grant).await?;
            tracing::info!(client_id = %grant.client_id, "granted the admin application the management scopes this hookd adds");
        }
    }
    let mut upgraded = api.clone();
    for scope in MANAGEMENT_SCOPES {
        if !defined.contains(scope) {
            upgraded.scopes.push(crate::model::ApiScope {
                value: (*scope).to_owned(),
                description: String::new(),
            });
        }
    }
    if upgraded != *api {
        store.update_api(&upgraded).await?;
    }
    Ok(true)
}

/// Makes sure the Management API exists and an application holds every management scope on
/// it. What is missing (all of it on first start) is written with the tenant in one
/// transaction, after `DIR/admin.json` (0600) names the admin's credentials, so a start that
/// fails anywhere leaves a store the next start completes, never a Management API nobody can
/// call. The admin is `HOOKD_ADMIN_CLIENT_ID` / `HOOKD_ADMIN_CLIENT_SECRET` when given (an
/// existing application of that id is granted, its secret untouched), else generated.
async fn bootstrap_admin(
    store: &Store,
    secret_box: &SecretBox,
    hasher: &SecretHasher,
    tenant: &Tenant,
    config: &ServeConfig,
) -> Result<(), StartError> {
    let audience = crate::http::management_audience(&tenant.issuer);
    let existing_api = store.api_by_identifier(&audience).await?;
    if let Some(api) = &existing_api {
        if has_admin(store, api).await? {
            return Ok(());
        }
        if grant_new_management_scopes(store, api).await? {
            return Ok(());
        }
    }
    let api = match existing_api {
        Some(_) => None,
        None => {
            let mut management_api =
                NewApi::new(&audience, "hookd Management API", MANAGEMENT_SCOPES);
            management_api.token_lifetime = MANAGEMENT_TOKEN_LIFETIME;
            let (api, _) = management::new_api_record(secret_box, management_api)
                .map_err(|error| StartError::Bootstrap(error.to_string()))?;
            Some(api)
        }
    };
    let (client_id, secret, from_env) = match &config.admin_credentials {
        Some((id, secret)) => (id.clone(), secret.clone(), true),
        None => (
            crate::secrets::random_alphanumeric(32),
            crate::secrets::new_client_secret(),
            false,
        ),
    };
    let client = if from_env && store.client(&client_id).await?.is_some() {
        None
    } else {
        let client = management::new_client_record(
            hasher,
            "hookd admin",
            Default::default(),
            &client_id,
            &secret,
        )
        .map_err(|error| {
            let source = if from_env {
                "HOOKD_ADMIN_CLIENT_SECRET / _ID: "
            } else {
                ""
            };
            StartError::Bootstrap(format!("{source}{error}"))
        })?;
        Some(client)
    };
    let grant = crate::model::ClientGrant {
        id: format!("cgr_{}", crate::secrets::random_alphanumeric(16)),
        client_id: client_id.clone(),
        audience: audience.clone(),
        scope: MANAGEMENT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let path = config.data_dir.join("admin.json");
    write_admin_file(
        &path,
        &AdminCredentials {
            client_id,
            client_secret: (!from_env).then_some(secret),
            audience,
            token_endpoint: crate::http::token_endpoint(&tenant.issuer),
        },
    )?;
    store
        .bootstrap(&crate::store::AdminBootstrap {
            tenant,
            api: api.as_ref(),
            client: client.as_ref(),
            grant: &grant,
        })
        .await
        .map_err(|error| StartError::Bootstrap(error.to_string()))?;
    if api.is_some() {
        tracing::info!(path = %path.display(), "created the Management API and its admin application");
    } else {
        tracing::warn!(path = %path.display(), "the Management API had no admin application: created one");
    }
    Ok(())
}

/// The server's compiled-hook cache in `dir`, its artifacts authenticated under a key derived
/// from the installation's secrets key: a copied or planted artifact never runs.
pub fn artifact_cache(dir: PathBuf, secret_box: &SecretBox) -> ArtifactCacheSettings {
    ArtifactCacheSettings::new(dir, &secret_box.subkey("hookd compiled-artifact cache"))
}
