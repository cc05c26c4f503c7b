//! The only module that knows the databases: sled, embedded, for one machine ([`SledStore`]),
//! and PostgreSQL, shared by several nodes ([`postgres::PgStore`]). Both keep the same
//! records with the same rules, as [`RecordStore`] states and one contract test suite checks.
//! Every persisted record is wrapped in a versioned envelope (`{"version": "1", ...}`). In
//! sled, one tree per entity plus index trees, and writes that belong together (a record and
//! its index, a hook and its module, enabling one hook and disabling the others) are single
//! transactions, so a crash leaves the store consistent; the records the token endpoint reads
//! are also kept decoded in memory (`cache`).

mod cache;
pub mod postgres;
mod records;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::hooks::ExtensibilityPoint;
use crate::model::{Api, Client, ClientGrant, Hook, SigningKey, Tenant};
use cache::{ApisByIdentifier, Clients, GrantsByPair, RecordCache};
use records::{decode, encode};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or internal error.
    #[error("storage error: {0}")]
    Storage(String),
    /// A stored record could not be read back.
    #[error("stored record {tree}/{key} is unreadable: {detail}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// The record's key.
        key: String,
        /// What failed.
        detail: String,
    },
    /// The write would break a uniqueness rule (an id, identifier, name or pair that exists).
    #[error("{0}")]
    Conflict(String),
    /// The record the write depends on does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database could not be reached, or did not answer in time: nothing was written,
    /// and the call can be tried again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Storage(error.to_string())
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(error: TransactionError<StoreError>) -> Self {
        match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => StoreError::Storage(error.to_string()),
        }
    }
}

/// Aborts a transaction with a store error.
fn abort<T>(error: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(error))
}

/// Inside a transaction: adds `api` and its identifier index; the identifier must be new.
fn insert_api_into(
    apis: &sled::transaction::TransactionalTree,
    by_identifier: &sled::transaction::TransactionalTree,
    api: &Api,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if by_identifier.get(api.identifier.as_bytes())?.is_some() {
        return abort(StoreError::Conflict(format!(
            "an API with identifier {} exists",
            api.identifier
        )));
    }
    apis.insert(api.id.as_bytes(), encode(api))?;
    by_identifier.insert(api.identifier.as_bytes(), api.id.as_bytes())?;
    Ok(())
}

/// Inside a transaction: writes `hook` and, when it is enabled, disables every other enabled
/// hook of its trigger, so at most one hook per trigger is ever enabled.
fn write_hook(
    hooks: &sled::transaction::TransactionalTree,
    existing: &[Hook],
    hook: &Hook,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if hook.enabled {
        for other in existing
            .iter()
            .filter(|o| o.id != hook.id && o.trigger == hook.trigger && o.enabled)
        {
            let disabled = Hook {
                enabled: false,
                ..other.clone()
            };
            hooks.insert(other.id.as_bytes(), encode(&disabled))?;
        }
    }
    hooks.insert(hook.id.as_bytes(), encode(hook))?;
    Ok(())
}

/// Whether two key sets hold the same kids.
fn same_kids(a: &[SigningKey], b: &[SigningKey]) -> bool {
    fn kids(keys: &[SigningKey]) -> Vec<&str> {
        let mut kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
        kids.sort_unstable();
        kids
    }
    kids(a) == kids(b)
}

/// What [`SledStore::bootstrap`] writes: the tenant, and the parts of the Management API's admin
/// that do not exist yet.
#[derive(Debug)]
pub struct AdminBootstrap<'a> {
    /// The tenant record.
    pub tenant: &'a Tenant,
    /// The Management API, when it does not exist yet.
    pub api: Option<&'a Api>,
    /// The admin application, when it does not exist yet (else `grant.client_id` must).
    pub client: Option<&'a Client>,
    /// The admin's grant of every management scope.
    pub grant: &'a ClientGrant,
}

/// hookd's embedded database.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    clients: sled::Tree,
    apis: sled::Tree,
    api_by_identifier: sled::Tree,
    grants: sled::Tree,
    grant_by_pair: sled::Tree,
    hooks: sled::Tree,
    modules: sled::Tree,
    keys: sled::Tree,
    /// Decoded clients, APIs and grants for the token endpoint; every method that writes
    /// those trees goes through [`SledStore::write`], which empties it.
    cache: Arc<RecordCache>,
    /// Told how long each write took to become durable.
    write_timer: WriteTimer,
}

/// Whoever wants to know how long writes take to become durable (the server's metrics), set
/// once and shared by every handle.
#[derive(Clone, Default)]
struct WriteTimer(Arc<std::sync::OnceLock<ObserveWrite>>);

/// What [`SledStore::observe_writes`] calls with each write's time.
type ObserveWrite = Box<dyn Fn(std::time::Duration) + Send + Sync>;

impl WriteTimer {
    fn set(&self, observe: impl Fn(std::time::Duration) + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(observe));
    }

    fn observe(&self, took: std::time::Duration) {
        if let Some(observe) = self.0.get() {
            observe(took);
        }
    }
}

impl std::fmt::Debug for WriteTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTimer")
            .field("set", &self.0.get().is_some())
            .finish()
    }
}

const TENANT: &[u8] = b"tenant";
const SECRET_HASH_KEY: &[u8] = b"secret_hash_key";

/// Whether opening failed because another handle holds the directory's lock. sled 0.34
/// reports that as an `Other` error whose text names the lock (the `WouldBlock` underneath is
/// only formatted into the message), so the text is what tells it apart.
fn is_lock_contention(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock
        || error.to_string().starts_with("could not acquire lock on")
}

/// Creates `dir` if needed and makes it and the database inside it private to the server's
/// user (directories 0700, files 0600), whatever the umask: the database holds signing keys
/// and secrets. Only the database's own files are touched, never anything else an operator
/// keeps in `dir`. (The `hookd` binary also sets its umask to 077, so files made later are
/// private too.)
fn make_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("db"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fn walk(path: &Path) -> std::io::Result<()> {
            let metadata = std::fs::symlink_metadata(path)?;
            if metadata.is_dir() {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
                for entry in std::fs::read_dir(path)? {
                    walk(&entry?.path())?;
                }
            } else if metadata.is_file() && metadata.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        walk(&dir.join("db"))?;
    }
    Ok(())
}

fn pair_key(client_id: &str, audience: &str) -> Vec<u8> {
    [client_id.as_bytes(), b"\0", audience.as_bytes()].concat()
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`. sled holds an exclusive file lock that
    /// it can release a moment after the last handle closes (its I/O threads finish first),
    /// so a lock held by a just-closed handle in this process is waited out; a lock that stays
    /// held means another process owns the directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_waiting(dir, std::time::Duration::from_secs(10))
    }

    fn open_waiting(dir: &Path, lock_wait: std::time::Duration) -> Result<Self, StoreError> {
        make_private(dir).map_err(|error| {
            StoreError::Storage(format!(
                "the data directory {} cannot be made private: {error}",
                dir.display()
            ))
        })?;
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(dir.join("db")).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(error)) if is_lock_contention(&error) => {
                    if started.elapsed() >= lock_wait {
                        return Err(StoreError::Storage(format!(
                            "the data directory {} is in use by another hookd process",
                            dir.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => return Err(error.into()),
            }
        };
        Ok(SledStore {
            meta: db.open_tree("meta")?,
            clients: db.open_tree("clients")?,
            apis: db.open_tree("apis")?,
            api_by_identifier: db.open_tree("api_by_identifier")?,
            grants: db.open_tree("grants")?,
            grant_by_pair: db.open_tree("grant_by_pair")?,
            hooks: db.open_tree("hooks")?,
            modules: db.open_tree("modules")?,
            keys: db.open_tree("keys")?,
            db,
            cache: Arc::default(),
            write_timer: WriteTimer::default(),
        })
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(
        tree: &sled::Tree,
        name: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        tree.get(key)?
            .map(|bytes| decode(name, key, &bytes))
            .transpose()
    }

    fn all<T: DeserializeOwned>(
        tree: &sled::Tree,
        name: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        tree.iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                decode(name, &key, &bytes)
            })
            .collect()
    }

    /// Runs a write to the clients, APIs or grants, then empties the decoded-record cache
    /// (whether or not the write succeeded: a failed one wrote nothing, and an empty cache
    /// only costs the next reads a trip to sled). A write that succeeded is durable when this
    /// returns.
    fn write<R>(&self, write: impl FnOnce() -> Result<R, StoreError>) -> Result<R, StoreError> {
        let result = write();
        self.cache.invalidate();
        self.durable(result)
    }

    /// `result` of a write, once the write is on disk: sled keeps writes in memory and
    /// flushes them every half second, so without this a crash right after a management
    /// call's 2xx could lose what it acknowledged (a secret rotation undone, say).
    fn durable<R>(&self, result: Result<R, StoreError>) -> Result<R, StoreError> {
        let value = result?;
        let started = std::time::Instant::now();
        self.db.flush()?;
        self.write_timer.observe(started.elapsed());
        Ok(value)
    }

    /// Calls `observe` with the time each write from now on takes to become durable (sled:
    /// the flush to disk, which is most of a write). Set once per store; later calls are
    /// ignored.
    pub fn observe_writes(&self, observe: impl Fn(std::time::Duration) + Send + Sync + 'static) {
        self.write_timer.set(observe);
    }

    /// The tenant settings, once initialised.
    pub fn tenant(&self) -> Result<Option<Tenant>, StoreError> {
        Self::get(&self.meta, "meta", TENANT)
    }

    /// The installation's key for hashing client secrets (as stored: the caller seals it),
    /// `fresh` stored on first use.
    pub fn secret_hash_key(&self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        // Only the first writer's key is kept; every later caller reads it back.
        let swapped =
            self.meta
                .compare_and_swap(SECRET_HASH_KEY, None as Option<&[u8]>, Some(fresh))?;
        if swapped.is_ok() {
            self.durable(Ok(()))?;
        }
        self.meta
            .get(SECRET_HASH_KEY)?
            .map(|key| key.to_vec())
            .ok_or_else(|| StoreError::Storage("secret hash key vanished".to_owned()))
    }

    /// Replaces the stored client-secret key `current` with `replacement` (the same key in
    /// another form); nothing changes if another writer got there first.
    pub fn replace_secret_hash_key(
        &self,
        current: &[u8],
        replacement: &[u8],
    ) -> Result<(), StoreError> {
        let swapped =
            self.meta
                .compare_and_swap(SECRET_HASH_KEY, Some(current), Some(replacement))?;
        if swapped.is_ok() {
            self.durable(Ok(()))?;
        }
        Ok(())
    }

    /// An application by `client_id`.
    pub fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.cache.get_or_load::<Clients, _>(
            |cached| cached.get(client_id),
            || client_id.to_owned(),
            || Self::get(&self.clients, "clients", client_id.as_bytes()),
        )
    }

    /// Every application.
    pub fn clients(&self) -> Result<Vec<Client>, StoreError> {
        Self::all(&self.clients, "clients")
    }

    /// Adds an application; its `client_id` must be new.
    pub fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        self.write(|| {
            let key = client.client_id.as_bytes();
            let inserted =
                self.clients
                    .compare_and_swap(key, None as Option<&[u8]>, Some(encode(client)))?;
            inserted
                .map_err(|_| StoreError::Conflict(format!("client {} exists", client.client_id)))
        })
    }

    /// Changes an existing application's record in one step: `change` is applied to the
    /// record as stored at that moment and the result written (sled retries it if another
    /// write overtook it), so two changes never undo each other; a stale PATCH cannot put
    /// back a secret a rotation replaced. Returns the record written.
    pub fn modify_client(
        &self,
        client_id: &str,
        change: impl Fn(&mut Client),
    ) -> Result<Client, StoreError> {
        self.write(|| {
            let key = client_id.as_bytes();
            let written = self.clients.transaction(|clients| {
                let Some(bytes) = clients.get(key)? else {
                    return abort(StoreError::NotFound(format!("no client {client_id}")));
                };
                let mut client: Client = decode("clients", key, &bytes).or_else(abort)?;
                change(&mut client);
                clients.insert(key, encode(&client))?;
                Ok(client)
            })?;
            Ok(written)
        })
    }

    /// Deletes an application and its client grants in one transaction.
    pub fn delete_client(&self, client_id: &str) -> Result<(), StoreError> {
        self.write(|| {
            let grants: Vec<ClientGrant> = self
                .grants()?
                .into_iter()
                .filter(|grant| grant.client_id == client_id)
                .collect();
            (&self.clients, &self.grants, &self.grant_by_pair).transaction(
                |(clients, grant_tree, by_pair)| {
                    if clients.remove(client_id.as_bytes())?.is_none() {
                        return abort(StoreError::NotFound(format!("no client {client_id}")));
                    }
                    for grant in &grants {
                        grant_tree.remove(grant.id.as_bytes())?;
                        by_pair.remove(pair_key(&grant.client_id, &grant.audience))?;
                    }
                    Ok(())
                },
            )?;
            Ok(())
        })
    }

    /// An API by hookd's id for it.
    pub fn api(&self, id: &str) -> Result<Option<Api>, StoreError> {
        Self::get(&self.apis, "apis", id.as_bytes())
    }

    /// Replaces an existing API's record; its identifier cannot change.
    pub fn update_api(&self, api: &Api) -> Result<(), StoreError> {
        self.write(|| {
            self.apis.transaction(|apis| {
                let Some(bytes) = apis.get(api.id.as_bytes())? else {
                    return abort(StoreError::NotFound(format!("no API {}", api.id)));
                };
                let stored: Api = decode("apis", api.id.as_bytes(), &bytes)
                    .map_err(ConflictableTransactionError::Abort)?;
                if stored.identifier != api.identifier {
                    return abort(StoreError::Conflict(
                        "identifier cannot be changed".to_owned(),
                    ));
                }
                apis.insert(api.id.as_bytes(), encode(api))?;
                Ok(())
            })?;
            Ok(())
        })
    }

    /// Deletes an API, its identifier index and every grant for it, in one transaction.
    pub fn delete_api(&self, id: &str) -> Result<(), StoreError> {
        self.write(|| {
            let Some(api) = self.api(id)? else {
                return Err(StoreError::NotFound(format!("no API {id}")));
            };
            let grants: Vec<ClientGrant> = self
                .grants()?
                .into_iter()
                .filter(|grant| grant.audience == api.identifier)
                .collect();
            (
                &self.apis,
                &self.api_by_identifier,
                &self.grants,
                &self.grant_by_pair,
            )
                .transaction(|(apis, by_identifier, grant_tree, by_pair)| {
                    apis.remove(api.id.as_bytes())?;
                    by_identifier.remove(api.identifier.as_bytes())?;
                    for grant in &grants {
                        grant_tree.remove(grant.id.as_bytes())?;
                        by_pair.remove(pair_key(&grant.client_id, &grant.audience))?;
                    }
                    Ok(())
                })?;
            Ok(())
        })
    }

    /// Every client grant.
    pub fn grants(&self) -> Result<Vec<ClientGrant>, StoreError> {
        Self::all(&self.grants, "grants")
    }

    /// A client grant by id.
    pub fn grant(&self, id: &str) -> Result<Option<ClientGrant>, StoreError> {
        Self::get(&self.grants, "grants", id.as_bytes())
    }

    /// Replaces an existing grant's scopes (client and audience cannot change).
    pub fn update_grant(&self, grant: &ClientGrant) -> Result<(), StoreError> {
        self.write(|| {
            self.grants.transaction(|grants| {
                if grants.get(grant.id.as_bytes())?.is_none() {
                    return abort(StoreError::NotFound(format!(
                        "no client grant {}",
                        grant.id
                    )));
                }
                grants.insert(grant.id.as_bytes(), encode(grant))?;
                Ok(())
            })?;
            Ok(())
        })
    }

    /// Deletes a client grant and its index entry in one transaction.
    pub fn delete_grant(&self, id: &str) -> Result<(), StoreError> {
        self.write(|| {
            let Some(grant) = self.grant(id)? else {
                return Err(StoreError::NotFound(format!("no client grant {id}")));
            };
            (&self.grants, &self.grant_by_pair).transaction(|(grants, by_pair)| {
                grants.remove(grant.id.as_bytes())?;
                by_pair.remove(pair_key(&grant.client_id, &grant.audience))?;
                Ok(())
            })?;
            Ok(())
        })
    }

    /// An API by its identifier (the audience).
    pub fn api_by_identifier(&self, identifier: &str) -> Result<Option<Api>, StoreError> {
        self.cache.get_or_load::<ApisByIdentifier, _>(
            |cached| cached.get(identifier),
            || identifier.to_owned(),
            || match self.api_by_identifier.get(identifier.as_bytes())? {
                None => Ok(None),
                Some(id) => Self::get(&self.apis, "apis", &id),
            },
        )
    }

    /// Every API.
    pub fn apis(&self) -> Result<Vec<Api>, StoreError> {
        Self::all(&self.apis, "apis")
    }

    /// Adds an API and its identifier index in one transaction; the identifier must be new.
    pub fn insert_api(&self, api: &Api) -> Result<(), StoreError> {
        self.write(|| {
            (&self.apis, &self.api_by_identifier)
                .transaction(|(apis, by_identifier)| insert_api_into(apis, by_identifier, api))?;
            Ok(())
        })
    }

    /// The grant of `client_id` for `audience`, if there is one.
    pub fn grant_for(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<ClientGrant>, StoreError> {
        let pair = pair_key(client_id, audience);
        self.cache.get_or_load::<GrantsByPair, _>(
            |cached| cached.get(pair.as_slice()),
            || pair.clone(),
            || match self.grant_by_pair.get(&pair)? {
                None => Ok(None),
                Some(id) => Self::get(&self.grants, "grants", &id),
            },
        )
    }

    /// Adds a client grant and its (client, audience) index in one transaction; the pair must
    /// be new.
    pub fn insert_grant(&self, grant: &ClientGrant) -> Result<(), StoreError> {
        self.write(|| {
            let pair = pair_key(&grant.client_id, &grant.audience);
            (&self.grants, &self.grant_by_pair).transaction(|(grants, by_pair)| {
                if by_pair.get(&pair)?.is_some() {
                    return abort(StoreError::Conflict(format!(
                        "client {} already has a grant for {}",
                        grant.client_id, grant.audience
                    )));
                }
                grants.insert(grant.id.as_bytes(), encode(grant))?;
                by_pair.insert(pair.as_slice(), grant.id.as_bytes())?;
                Ok(())
            })?;
            Ok(())
        })
    }

    /// Writes the tenant and whatever the Management API's admin still lacks, in one
    /// transaction: the Management API itself, the admin application, and its grant (which
    /// replaces a grant the pair already has). A start that fails part way therefore leaves
    /// nothing behind, and the next start finds the same gap and fills it.
    pub fn bootstrap(&self, admin: &AdminBootstrap<'_>) -> Result<(), StoreError> {
        self.write(|| {
            let pair = pair_key(&admin.grant.client_id, &admin.grant.audience);
            (
                &self.meta,
                &self.apis,
                &self.api_by_identifier,
                &self.clients,
                &self.grants,
                &self.grant_by_pair,
            )
                .transaction(
                    |(meta, apis, by_identifier, clients, grants, by_pair)| {
                        meta.insert(TENANT, encode(admin.tenant))?;
                        if let Some(api) = admin.api {
                            insert_api_into(apis, by_identifier, api)?;
                        }
                        if let Some(client) = admin.client {
                            if clients.get(client.client_id.as_bytes())?.is_some() {
                                return abort(StoreError::Conflict(format!(
                                    "client {} exists",
                                    client.client_id
                                )));
                            }
                            clients.insert(client.client_id.as_bytes(), encode(client))?;
                        } else if clients.get(admin.grant.client_id.as_bytes())?.is_none() {
                            return abort(StoreError::NotFound(format!(
                                "no client {}",
                                admin.grant.client_id
                            )));
                        }
                        if let Some(replaced) = by_pair.get(&pair)? {
                            grants.remove(replaced)?;
                        }
                        grants.insert(admin.grant.id.as_bytes(), encode(admin.grant))?;
                        by_pair.insert(pair.as_slice(), admin.grant.id.as_bytes())?;
                        Ok(())
                    },
                )?;
            Ok(())
        })
    }

    /// Moves the tenant to `tenant.issuer` in one transaction: the tenant record, the
    /// Management API's identifier (`from` becomes `to`) and every grant for it.
    pub fn change_issuer(&self, tenant: &Tenant, from: &str, to: &str) -> Result<(), StoreError> {
        self.write(|| {
            let moved: Vec<ClientGrant> = self
                .grants()?
                .into_iter()
                .filter(|grant| grant.audience == from)
                .collect();
            (
                &self.meta,
                &self.apis,
                &self.api_by_identifier,
                &self.grants,
                &self.grant_by_pair,
            )
                .transaction(|(meta, apis, by_identifier, grants, by_pair)| {
                    if by_identifier.get(to.as_bytes())?.is_some() {
                        return abort(StoreError::Conflict(format!(
                            "an API with identifier {to} exists"
                        )));
                    }
                    meta.insert(TENANT, encode(tenant))?;
                    if let Some(id) = by_identifier.remove(from.as_bytes())? {
                        let Some(bytes) = apis.get(&id)? else {
                            return abort(StoreError::NotFound(format!("no API {from}")));
                        };
                        let mut api: Api = decode("apis", &id, &bytes).or_else(abort)?;
                        api.identifier = to.to_owned();
                        apis.insert(&id, encode(&api))?;
                        by_identifier.insert(to.as_bytes(), id)?;
                    }
                    for grant in &moved {
                        by_pair.remove(pair_key(&grant.client_id, from))?;
                        let grant = ClientGrant {
                            audience: to.to_owned(),
                            ..grant.clone()
                        };
                        grants.insert(grant.id.as_bytes(), encode(&grant))?;
                        by_pair.insert(pair_key(&grant.client_id, to), grant.id.as_bytes())?;
                    }
                    Ok(())
                })?;
            Ok(())
        })
    }

    /// Every hook.
    pub fn hooks(&self) -> Result<Vec<Hook>, StoreError> {
        Self::all(&self.hooks, "hooks")
    }

    /// The enabled hook of `trigger`, if any.
    pub fn enabled_hook(&self, trigger: ExtensibilityPoint) -> Result<Option<Hook>, StoreError> {
        Ok(self
            .hooks()?
            .into_iter()
            .find(|hook| hook.trigger == trigger && hook.enabled))
    }

    /// A stored module by sha256.
    pub fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .modules
            .get(sha256.as_bytes())?
            .map(|bytes| bytes.to_vec()))
    }

    /// Adds a hook with its first module in one transaction. The name must be new; if the
    /// hook is enabled, every other hook of its trigger is disabled in the same transaction.
    pub fn insert_hook(&self, hook: &Hook, module: &[u8]) -> Result<(), StoreError> {
        let existing = self.hooks()?;
        (&self.hooks, &self.modules).transaction(|(hooks, modules)| {
            if existing
                .iter()
                .any(|other| other.name == hook.name || other.id == hook.id)
            {
                return abort(StoreError::Conflict(format!(
                    "a hook named {} exists",
                    hook.name
                )));
            }
            if let Some(version) = hook.versions.last() {
                modules.insert(version.sha256.as_bytes(), module)?;
            }
            write_hook(hooks, &existing, hook)
        })?;
        self.durable(Ok(()))
    }

    /// A hook by id.
    pub fn hook(&self, id: &str) -> Result<Option<Hook>, StoreError> {
        Self::get(&self.hooks, "hooks", id.as_bytes())
    }

    /// Stores a new module version of a hook and the updated hook record in one
    /// transaction (the caller appended the version to `hook.versions`).
    pub fn add_hook_version(&self, hook: &Hook, module: &[u8]) -> Result<(), StoreError> {
        let Some(version) = hook.versions.last() else {
            return Err(StoreError::NotFound(
                "the hook has no version to add".to_owned(),
            ));
        };
        (&self.hooks, &self.modules).transaction(|(hooks, modules)| {
            if hooks.get(hook.id.as_bytes())?.is_none() {
                return abort(StoreError::NotFound(format!("no hook {}", hook.id)));
            }
            modules.insert(version.sha256.as_bytes(), module)?;
            hooks.insert(hook.id.as_bytes(), encode(hook))?;
            Ok(())
        })?;
        self.durable(Ok(()))
    }

    /// Deletes a hook and the modules no other hook uses, in one transaction.
    pub fn delete_hook(&self, id: &str) -> Result<Hook, StoreError> {
        let hooks = self.hooks()?;
        let Some(hook) = hooks.iter().find(|hook| hook.id == id).cloned() else {
            return Err(StoreError::NotFound(format!("no hook {id}")));
        };
        let orphaned: Vec<String> = hook
            .versions
            .iter()
            .map(|version| version.sha256.clone())
            .filter(|sha| {
                !hooks
                    .iter()
                    .filter(|other| other.id != id)
                    .any(|other| other.versions.iter().any(|v| v.sha256 == *sha))
            })
            .collect();
        (&self.hooks, &self.modules).transaction(|(hooks, modules)| {
            hooks.remove(id.as_bytes())?;
            for sha in &orphaned {
                modules.remove(sha.as_bytes())?;
            }
            Ok(())
        })?;
        self.durable(Ok(hook))
    }

    /// Replaces a hook's record. If it is enabled, every other hook of its trigger is
    /// disabled in the same transaction.
    pub fn update_hook(&self, hook: &Hook) -> Result<(), StoreError> {
        let existing = self.hooks()?;
        if !existing.iter().any(|other| other.id == hook.id) {
            return Err(StoreError::NotFound(format!("no hook {}", hook.id)));
        }
        if existing
            .iter()
            .any(|other| other.id != hook.id && other.name == hook.name)
        {
            return Err(StoreError::Conflict(format!(
                "a hook named {} exists",
                hook.name
            )));
        }
        self.hooks
            .transaction(|hooks| write_hook(hooks, &existing, hook))
            .map_err(|error: TransactionError<StoreError>| StoreError::from(error))?;
        self.durable(Ok(()))
    }

    /// Every signing key.
    pub fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        Self::all(&self.keys, "keys")
    }

    /// Replaces the stored signing keys with `keys` if they are still `expected` (by kid).
    /// One process owns a sled store, and its rotations are serialised, so the check and the
    /// write cannot interleave with another writer's.
    pub fn replace_signing_keys(
        &self,
        expected: &[SigningKey],
        keys: &[SigningKey],
    ) -> Result<(), StoreError> {
        if !same_kids(&self.signing_keys()?, expected) {
            return Err(StoreError::Conflict(
                "the signing keys changed since they were read".to_owned(),
            ));
        }
        self.put_signing_keys(keys)
    }

    /// Replaces the stored set of signing keys with `keys` in one transaction.
    pub fn put_signing_keys(&self, keys: &[SigningKey]) -> Result<(), StoreError> {
        let stale: Vec<sled::IVec> = self.keys.iter().keys().collect::<Result<_, _>>()?;
        self.keys
            .transaction(|tree| {
                for key in &stale {
                    tree.remove(key)?;
                }
                for key in keys {
                    tree.insert(key.kid.as_bytes(), encode(key))?;
                }
                Ok(())
            })
            .map_err(|error: TransactionError<StoreError>| StoreError::from(error))?;
        self.durable(Ok(()))
    }
}

/// hookd's store: sled in the data directory (one machine), or PostgreSQL shared by several
/// nodes. Every call goes to the backend chosen at start.
#[derive(Debug, Clone)]
pub enum Store {
    /// sled, embedded.
    Sled(SledStore),
    /// PostgreSQL.
    Postgres(postgres::PgStore),
}

impl Store {
    /// The sled store in `dir` (see [`SledStore::open`]).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        SledStore::open(dir).map(Store::Sled)
    }

    /// The sled store, when that is the backend.
    pub fn sled(&self) -> Option<&SledStore> {
        match self {
            Store::Sled(store) => Some(store),
            Store::Postgres(_) => None,
        }
    }

    /// Makes every write so far durable (PostgreSQL's are when they commit).
    pub fn flush(&self) -> Result<(), StoreError> {
        match self {
            Store::Sled(store) => store.flush(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// How long, at `now`, this node has not heard from a shared database (`None` for sled,
    /// which is always at hand).
    pub fn silent_for(&self, now: u64) -> Option<u64> {
        match self {
            Store::Sled(_) => None,
            Store::Postgres(store) => Some(store.silent_for(now)),
        }
    }

    /// Calls `observe` with the time each write takes to become durable.
    pub fn observe_writes(&self, observe: impl Fn(std::time::Duration) + Send + Sync + 'static) {
        match self {
            Store::Sled(store) => store.observe_writes(observe),
            Store::Postgres(store) => store.observe_writes(observe),
        }
    }
}

tokio::task_local! {
    /// The newest revision of the change feed written by the task running
    /// [`revision_written_by`].
    static WRITTEN_REVISION: std::cell::Cell<Option<i64>>;
}

/// Notes that the current task's write produced `revision` (PostgreSQL's change feed).
fn wrote_revision(revision: i64) {
    let _ = WRITTEN_REVISION.try_with(|written| {
        written.set(Some(
            written.get().map_or(revision, |seen| seen.max(revision)),
        ));
    });
}

/// Runs `work` and says which revision of the change feed its writes produced, the newest
/// when it wrote several (`None` when it wrote nothing, or on sled, which has no feed).
pub async fn revision_written_by<F: Future>(work: F) -> (F::Output, Option<i64>) {
    WRITTEN_REVISION
        .scope(std::cell::Cell::new(None), async {
            let output = work.await;
            (output, WRITTEN_REVISION.with(|written| written.get()))
        })
        .await
}

/// Declares [`RecordStore`] from its methods' signatures, and implements it for the sled
/// store (whose answers are ready at once), for PostgreSQL (its own async methods of the same
/// names) and for [`Store`] (the backend chosen at start).
macro_rules! record_store {
    (
        [$(#[$trait_meta:meta])*]
        $(
            $(#[$meta:meta])*
            fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;
        )*
    ) => {
        $(#[$trait_meta])*
        pub trait RecordStore: Send + Sync {
            $(
                $(#[$meta])*
                fn $name(&self $(, $arg: $ty)*) -> impl Future<Output = $ret> + Send;
            )*
        }

        impl RecordStore for SledStore {
            $(
                fn $name(&self $(, $arg: $ty)*) -> impl Future<Output = $ret> + Send {
                    std::future::ready(SledStore::$name(self $(, $arg)*))
                }
            )*
        }

        impl RecordStore for postgres::PgStore {
            $(
                fn $name(&self $(, $arg: $ty)*) -> impl Future<Output = $ret> + Send {
                    postgres::PgStore::$name(self $(, $arg)*)
                }
            )*
        }

        impl RecordStore for Store {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match self {
                        Store::Sled(store) => RecordStore::$name(store $(, $arg)*).await,
                        Store::Postgres(store) => RecordStore::$name(store $(, $arg)*).await,
                    }
                }
            )*
        }
    };
}

record_store! {
    [
        /// The records hookd keeps, as both backends keep them: the sled store ([`SledStore`]) and
        /// PostgreSQL ([`postgres::PgStore`]) answer every call with the same results and the same
        /// errors (`Conflict` for a broken uniqueness rule, `NotFound` for a missing record), which
        /// one contract test suite checks against both.
    ]
    /// The tenant settings, once initialised.
    fn tenant(&self) -> Result<Option<Tenant>, StoreError>;
    /// The installation's client-secret key (as stored), `fresh` stored on first use.
    fn secret_hash_key(&self, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Replaces the client-secret key `current` with `replacement`, unless another writer did.
    fn replace_secret_hash_key(&self, current: &[u8], replacement: &[u8]) -> Result<(), StoreError>;
    /// An application by `client_id`.
    fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    /// Every application.
    fn clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Adds an application; its `client_id` must be new (409).
    fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Changes an application's record as stored at that moment, in one step.
    fn modify_client(&self, client_id: &str, change: impl Fn(&mut Client) + Send + Sync) -> Result<Client, StoreError>;
    /// Deletes an application and its grants.
    fn delete_client(&self, client_id: &str) -> Result<(), StoreError>;
    /// An API by hookd's id for it.
    fn api(&self, id: &str) -> Result<Option<Api>, StoreError>;
    /// An API by its identifier (the audience).
    fn api_by_identifier(&self, identifier: &str) -> Result<Option<Api>, StoreError>;
    /// Every API.
    fn apis(&self) -> Result<Vec<Api>, StoreError>;
    /// Adds an API; its identifier must be new (409).
    fn insert_api(&self, api: &Api) -> Result<(), StoreError>;
    /// Replaces an API's record; its identifier cannot change (409).
    fn update_api(&self, api: &Api) -> Result<(), StoreError>;
    /// Deletes an API and every grant for it.
    fn delete_api(&self, id: &str) -> Result<(), StoreError>;
    /// Every client grant.
    fn grants(&self) -> Result<Vec<ClientGrant>, StoreError>;
    /// A client grant by id.
    fn grant(&self, id: &str) -> Result<Option<ClientGrant>, StoreError>;
    /// The grant of `client_id` for `audience`.
    fn grant_for(&self, client_id: &str, audience: &str) -> Result<Option<ClientGrant>, StoreError>;
    /// Adds a grant; one per (client, audience) pair (409).
    fn insert_grant(&self, grant: &ClientGrant) -> Result<(), StoreError>;
    /// Replaces a grant's record.
    fn update_grant(&self, grant: &ClientGrant) -> Result<(), StoreError>;
    /// Deletes a grant.
    fn delete_grant(&self, id: &str) -> Result<(), StoreError>;
    /// Writes the tenant and what the Management API's admin lacks, in one transaction.
    fn bootstrap(&self, admin: &AdminBootstrap<'_>) -> Result<(), StoreError>;
    /// Moves the tenant, the Management API's identifier and its grants to a new issuer.
    fn change_issuer(&self, tenant: &Tenant, from: &str, to: &str) -> Result<(), StoreError>;
    /// Every hook.
    fn hooks(&self) -> Result<Vec<Hook>, StoreError>;
    /// A hook by id.
    fn hook(&self, id: &str) -> Result<Option<Hook>, StoreError>;
    /// The enabled hook of `trigger`.
    fn enabled_hook(&self, trigger: ExtensibilityPoint) -> Result<Option<Hook>, StoreError>;
    /// A stored module by sha256.
    fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Adds a hook with its first module; enabling it disables the trigger's other hooks.
    fn insert_hook(&self, hook: &Hook, module: &[u8]) -> Result<(), StoreError>;
    /// Stores a hook's new module version and its record.
    fn add_hook_version(&self, hook: &Hook, module: &[u8]) -> Result<(), StoreError>;
    /// Replaces a hook's record; enabling it disables the trigger's other hooks.
    fn update_hook(&self, hook: &Hook) -> Result<(), StoreError>;
    /// Deletes a hook and the modules no other hook uses.
    fn delete_hook(&self, id: &str) -> Result<Hook, StoreError>;
    /// Every signing key.
    fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;
    /// Replaces the set of signing keys if it is still `expected` (by kid), in one step:
    /// `Conflict` when another writer (another node rotating at the same moment) changed it
    /// since it was read.
    fn replace_signing_keys(&self, expected: &[SigningKey], keys: &[SigningKey]) -> Result<(), StoreError>;
    /// Replaces the set of signing keys.
    fn put_signing_keys(&self, keys: &[SigningKey]) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[cfg(unix)]
    #[test]
    fn opening_makes_the_data_directory_and_database_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("db")).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let stray = data.join("db").join("left-readable");
        std::fs::write(&stray, b"x").unwrap();
        std::fs::set_permissions(&stray, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        drop(SledStore::open(&data).unwrap());
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("db")), 0o700);
        assert_eq!(mode(&stray), 0o600);
    }

    fn client(id: &str, name: &str) -> Client {
        Client {
            client_id: id.to_owned(),
            name: name.to_owned(),
            app_type: "non_interactive".to_owned(),
            metadata: Default::default(),
            grant_types: vec!["client_credentials".to_owned()],
            secret_hash: "hash".to_owned(),
            secret_generation: 0,
        }
    }

    fn api(id: &str, identifier: &str, lifetime: u64) -> Api {
        Api {
            id: id.to_owned(),
            identifier: identifier.to_owned(),
            name: "API".to_owned(),
            scopes: Vec::new(),
            token_lifetime: lifetime,
            signing_alg: Default::default(),
            signing_secret: None,
            signing_secret_form: crate::model::SecretKeyForm::Text,
            token_dialect: Default::default(),
            hook_scope_policy: Default::default(),
        }
    }

    fn grant(id: &str, client_id: &str, audience: &str, scope: &[&str]) -> ClientGrant {
        ClientGrant {
            id: id.to_owned(),
            client_id: client_id.to_owned(),
            audience: audience.to_owned(),
            scope: scope.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_token_endpoints_reads_see_every_write_after_they_were_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        store.insert_client(&client("c1", "first")).unwrap();
        store.insert_api(&api("a1", "https://api/", 60)).unwrap();
        store
            .insert_grant(&grant("g1", "c1", "https://api/", &["read"]))
            .unwrap();

        // What the token endpoint reads: the client's name, the API's token lifetime and the
        // grant's scopes.
        let read = |store: &SledStore| {
            (
                store.client("c1").unwrap().unwrap().name,
                store
                    .api_by_identifier("https://api/")
                    .unwrap()
                    .unwrap()
                    .token_lifetime,
                store
                    .grant_for("c1", "https://api/")
                    .unwrap()
                    .unwrap()
                    .scope,
            )
        };
        // Twice: the second read is served from the cache.
        for _ in 0..2 {
            assert_eq!(
                read(&store),
                ("first".to_owned(), 60, vec!["read".to_owned()])
            );
        }
        assert_eq!(store.cache.len(), 3);

        // A clone shares the cache, as the server's handlers do.
        let writer = store.clone();
        writer
            .modify_client("c1", |c| c.name = "renamed".to_owned())
            .unwrap();
        writer.update_api(&api("a1", "https://api/", 120)).unwrap();
        writer
            .update_grant(&grant("g1", "c1", "https://api/", &["read", "write"]))
            .unwrap();
        let scopes = vec!["read".to_owned(), "write".to_owned()];
        assert_eq!(read(&store), ("renamed".to_owned(), 120, scopes));

        writer.delete_grant("g1").unwrap();
        assert_eq!(store.grant_for("c1", "https://api/").unwrap(), None);
        writer.delete_client("c1").unwrap();
        assert_eq!(store.client("c1").unwrap(), None);
        writer.delete_api("a1").unwrap();
        assert_eq!(store.api_by_identifier("https://api/").unwrap(), None);
    }

    #[test]
    fn unknown_ids_are_not_cached_and_a_read_overtaken_by_a_write_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        for n in 0..100 {
            assert_eq!(store.client(&format!("nobody-{n}")).unwrap(), None);
            assert_eq!(
                store.api_by_identifier(&format!("https://{n}/")).unwrap(),
                None
            );
        }
        assert_eq!(store.cache.len(), 0, "misses must not grow the cache");

        // A reader loads the old record; a write lands before the reader can cache it.
        store.insert_client(&client("c1", "old")).unwrap();
        let read = store
            .cache
            .get_or_load::<Clients, StoreError>(
                |cached| cached.get("c1"),
                || "c1".to_owned(),
                || {
                    let old = SledStore::get(&store.clients, "clients", b"c1");
                    store
                        .modify_client("c1", |c| c.name = "new".to_owned())
                        .unwrap();
                    old
                },
            )
            .unwrap();
        assert_eq!(read.unwrap().name, "old", "the reader got what it read");
        assert_eq!(store.cache.len(), 0, "but did not cache it");
        assert_eq!(store.client("c1").unwrap().unwrap().name, "new");
    }

    #[test]
    fn concurrent_client_changes_never_undo_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        store.insert_client(&client("c1", "start")).unwrap();
        // Renames and rotations race; every rotation must survive every rename.
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let store = store.clone();
                scope.spawn(move || {
                    for n in 0..25 {
                        if thread % 2 == 0 {
                            store
                                .modify_client("c1", |c| {
                                    c.secret_generation += 1;
                                    c.secret_hash = format!("hash-{}", c.secret_generation);
                                })
                                .unwrap();
                        } else {
                            store
                                .modify_client("c1", |c| c.name = format!("name-{thread}-{n}"))
                                .unwrap();
                        }
                    }
                });
            }
        });
        let stored = store.client("c1").unwrap().unwrap();
        assert_eq!(stored.secret_generation, 50);
        assert_eq!(stored.secret_hash, "hash-50");
        assert!(matches!(
            store.modify_client("nobody", |_| {}),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn each_kind_of_cached_record_is_capped() {
        let cache = RecordCache::default();
        for n in 0..cache::MAX_RECORDS_PER_KIND + 5 {
            let id = format!("c{n}");
            cache
                .get_or_load::<Clients, StoreError>(
                    |cached| cached.get(id.as_str()),
                    || id.clone(),
                    || Ok(Some(client(&id, "x"))),
                )
                .unwrap();
        }
        assert!(
            cache.len() <= cache::MAX_RECORDS_PER_KIND,
            "{}",
            cache.len()
        );
        assert!(cache.len() > 0);
    }

    #[test]
    fn a_held_directory_is_refused_after_the_wait_and_a_released_one_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = SledStore::open(dir.path()).expect("first open");

        let refused = match SledStore::open_waiting(dir.path(), Duration::from_millis(100)) {
            Ok(_) => panic!("a second handle opened while the first is open"),
            Err(error) => error,
        };
        assert!(
            refused
                .to_string()
                .contains("in use by another hookd process"),
            "{refused}"
        );

        // Released while the second open waits: the wait ends in an open store.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        SledStore::open_waiting(dir.path(), Duration::from_secs(10)).expect("opens once released");
        releaser.join().expect("releaser");
    }
}
