//! PostgreSQL, the store several nodes share: its schema, made by migrations embedded in the
//! binary and applied once under an advisory lock however many nodes start together. A node
//! refuses a database whose schema is newer than the one it knows.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::records::{decode, encode};
use super::{AdminBootstrap, StoreError};
use crate::hooks::ExtensibilityPoint;
use crate::model::{Api, Client, ClientGrant, Hook, NodeReport, SigningKey, Tenant};

/// The schema version this hookd knows.
pub const SCHEMA_VERSION: i32 = 2;

/// The migrations, in order: entry `i` makes version `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("postgres/schema_1.sql"),
    include_str!("postgres/schema_2.sql"),
];

/// How many revisions of the change feed are kept by default: a node further behind than
/// that reloads everything instead of catching up change by change.
pub const CHANGE_HISTORY: i64 = 10_000;

/// The advisory lock migrations hold ("hookd" in ASCII), so that nodes starting together
/// migrate one after the other and only the first one changes anything.
const MIGRATION_LOCK: i64 = 0x0068_6f6f_6b64;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The server could not be reached or refused the login.
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(String),
    /// The database was made by a newer hookd.
    #[error(
        "the database's schema is version {found}, newer than this hookd knows ({known}): \
         run the newer hookd, or point this one at another database"
    )]
    NewerSchema {
        /// The database's version.
        found: i32,
        /// This hookd's.
        known: i32,
    },
    /// A statement failed.
    #[error("PostgreSQL refused a statement: {0}")]
    Statement(String),
    /// The CA certificates for TLS to the database could not be used.
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),
}

/// How a node speaks TLS to PostgreSQL. Whether it does follows the URL's `sslmode`: `prefer`
/// (the default) when the server offers it, `require` always (refusing a server that does not),
/// `disable` never. With TLS, the server's certificate must be valid for the URL's host and
/// signed by a CA of the system's store or of `ca_file` (PEM, for an internal CA); a
/// certificate that is not is refused, never skipped.
pub fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<MakeRustlsConnect, PostgresError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    // Certificates of the system's store that rustls cannot use are skipped.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let unreadable = |error: String| PostgresError::Tls(format!("{}: {error}", path.display()));
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|error| unreadable(error.to_string()))?;
        if certificates.is_empty() {
            return Err(unreadable("holds no PEM certificate".to_owned()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| unreadable(error.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| PostgresError::Tls(error.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What [`migrate`] found and left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version before.
    pub from: i32,
    /// The schema version after: [`SCHEMA_VERSION`].
    pub to: i32,
}

/// The error's own message and the database's, without the connection string (which may hold
/// a password).
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

fn statement(error: tokio_postgres::Error) -> PostgresError {
    PostgresError::Statement(describe(&error))
}

/// Brings the database at `url` to [`SCHEMA_VERSION`] in one transaction, holding the
/// migration lock: the first of several nodes starting together applies what is missing, the
/// others wait for it and find nothing to do. A schema newer than this hookd's is refused and
/// left as it is.
pub async fn migrate(url: &str) -> Result<Migrated, PostgresError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|error| PostgresError::Connect(describe(&error)))?;
    migrate_with(&config, tls_connector(None)?).await
}

/// [`migrate`] with a parsed configuration.
async fn migrate_with(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
) -> Result<Migrated, PostgresError> {
    let (mut client, connection) = config
        .connect(tls)
        .await
        .map_err(|error| PostgresError::Connect(describe(&error)))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let transaction = client.transaction().await.map_err(statement)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(statement)?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS hookd_schema (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(statement)?;
        let found: i32 = transaction
            .query_one("SELECT coalesce(max(version), 0) FROM hookd_schema", &[])
            .await
            .map_err(statement)?
            .get(0);
        if found > SCHEMA_VERSION {
            return Err(PostgresError::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            });
        }
        for version in found + 1..=SCHEMA_VERSION {
            let sql = MIGRATIONS[(version - 1) as usize];
            transaction.batch_execute(sql).await.map_err(statement)?;
            transaction
                .execute(
                    "INSERT INTO hookd_schema (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(statement)?;
        }
        transaction.commit().await.map_err(statement)?;
        Ok(Migrated {
            from: found,
            to: SCHEMA_VERSION,
        })
    }
    .await;
    drop(client);
    // The connection ends once the client is gone; a failure to end cleanly changes nothing.
    let _ = driver.await;
    result
}

/// How long a node waits for PostgreSQL before a store call fails: to connect, for a pooled
/// connection, and for one statement. A call never hangs on a database that went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresTimeouts {
    /// Connecting (and for a free connection from the pool).
    pub connect: Duration,
    /// One statement.
    pub statement: Duration,
}

impl Default for PostgresTimeouts {
    fn default() -> Self {
        PostgresTimeouts {
            connect: Duration::from_secs(3),
            statement: Duration::from_secs(5),
        }
    }
}

/// The store on PostgreSQL: the same records and rules as the sled store, with the uniqueness
/// rules, the grants' references and the one enabled hook per trigger kept by the schema.
/// Every write also advances the change feed in its own transaction (the revision row, the
/// changed entities, and a `NOTIFY` carrying the revision).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// What a token needs (applications, APIs, grants), complete and in memory, so that the
    /// token path never waits on the database and keeps working while it is away.
    snapshot: std::sync::Arc<std::sync::RwLock<Snapshot>>,
    /// When the change feed last reached the database (seconds since the Unix epoch), as its
    /// follower reports it.
    heard_at: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// How to connect, for the change feed's listening connection (outside the pool).
    config: tokio_postgres::Config,
    /// TLS for those connections.
    tls: MakeRustlsConnect,
    /// Told how long each write took, from its transaction's start to its commit.
    write_timer: super::WriteTimer,
    /// How many revisions of the change feed each write keeps ([`CHANGE_HISTORY`]).
    change_history: i64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password; it is never printed.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// The channel the change feed notifies on.
pub const CHANGES_CHANNEL: &str = "hookd_changes";

/// The advisory lock a starting node holds while it settles the tenant, the admin and the
/// signing keys ("hookds" in ASCII).
const STARTUP_LOCK: i64 = 0x0000_686f_6f6b_6473;

/// Held by a starting node (see [`PgStore::startup_lock`]); released when dropped, as its
/// connection closes.
#[derive(Debug)]
pub struct StartupLock {
    _client: tokio_postgres::Client,
    _driver: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// The advisory lock every write of the signing keys holds ("hookdk" in ASCII), so that a
/// rotation's check of the current keys and its write are one step.
const KEYS_LOCK: i64 = 0x0000_686f_6f6b_646b;

/// How often a write is tried when it lost a race on a rule another transaction was changing
/// at the same moment (two nodes enabling hooks of one trigger).
const WRITE_ATTEMPTS: usize = 3;

/// A changed entity, as the change feed names it.
type Changed<'a> = (&'static str, &'a str);

/// What a write did inside its transaction: its result and the entities it changed.
type Work<R> = Result<(R, Vec<(&'static str, String)>), WriteError>;

/// A failed statement as the store reports it: the database gone, or too slow (a statement
/// or lock timeout), is `Unavailable`; anything else is a storage error.
fn store_error(error: tokio_postgres::Error) -> StoreError {
    let timed_out = error.as_db_error().is_some_and(|db| {
        matches!(
            *db.code(),
            SqlState::QUERY_CANCELED | SqlState::LOCK_NOT_AVAILABLE
        )
    });
    let gone = error.is_closed() || (error.as_db_error().is_none() && error.code().is_none());
    if timed_out || gone {
        StoreError::Unavailable(describe(&error))
    } else {
        StoreError::Storage(describe(&error))
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    // The pool's errors name the backend's error, never the connection string.
    StoreError::Unavailable(error.to_string())
}

/// The constraint a write broke, if it broke a uniqueness rule.
fn unique_violation(error: &tokio_postgres::Error) -> Option<String> {
    let db = error.as_db_error()?;
    (db.code() == &SqlState::UNIQUE_VIOLATION)
        .then(|| db.constraint().unwrap_or_default().to_owned())
}

/// Whether a write broke a reference (a grant's client or API that does not exist).
fn foreign_key_violation(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .is_some_and(|db| db.code() == &SqlState::FOREIGN_KEY_VIOLATION)
}

/// A record of `table`, from its stored JSON text.
fn record<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    text: &str,
) -> Result<T, StoreError> {
    decode(table, key.as_bytes(), text.as_bytes())
}

/// The stored JSON text of a record.
fn text<T: Serialize>(value: &T) -> String {
    String::from_utf8(encode(value)).unwrap_or_default()
}

/// Advances the change feed inside `transaction`: the next revision (the row lock orders the
/// writers, so revisions commit in order), what changed, and a notification sent on commit.
/// Changes older than the last `history` revisions are dropped.
async fn advance(
    transaction: &Transaction<'_>,
    changed: &[Changed<'_>],
    history: i64,
) -> Result<i64, tokio_postgres::Error> {
    let row = transaction
        .query_one(
            "UPDATE revision
             SET value = value + 1, oldest_kept = greatest(oldest_kept, value + 2 - $1)
             RETURNING value, oldest_kept",
            &[&history.max(1)],
        )
        .await?;
    let (revision, oldest_kept): (i64, i64) = (row.get(0), row.get(1));
    transaction
        .execute("DELETE FROM changes WHERE revision < $1", &[&oldest_kept])
        .await?;
    for (entity, id) in changed {
        transaction
            .execute(
                "INSERT INTO changes (revision, entity, entity_id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&revision, entity, id],
            )
            .await?;
    }
    transaction
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANGES_CHANNEL, &revision.to_string()],
        )
        .await?;
    Ok(revision)
}

/// Commits `work`'s transaction after advancing the change feed by what it changed.
async fn finish<R>(
    transaction: Transaction<'_>,
    work: Work<R>,
    history: i64,
) -> Result<(R, i64, Vec<(&'static str, String)>), WriteError> {
    let (value, changed) = work?;
    let named: Vec<Changed<'_>> = changed
        .iter()
        .map(|(entity, id)| (*entity, id.as_str()))
        .collect();
    let revision = advance(&transaction, &named, history).await?;
    transaction.commit().await?;
    Ok((value, revision, changed))
}

/// Whether a write lost a race on a rule another transaction was changing at the same moment
/// (two nodes enabling hooks of one trigger): trying again sees the other's result.
fn lost_race(error: &tokio_postgres::Error) -> bool {
    unique_violation(error).as_deref() == Some("hooks_one_enabled_per_trigger")
}

/// Runs `$body` (which returns its result and the entities it changed) in a transaction on
/// `$store`, advances the change feed and commits; a write that lost a race is tried again,
/// at most [`WRITE_ATTEMPTS`] times in all.
macro_rules! in_transaction {
    ($store:ident, |$transaction:ident| $body:block) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = std::time::Instant::now();
            let mut connection = $store.connection().await?;
            let owned = connection.transaction().await.map_err(store_error)?;
            let $transaction = &owned;
            let work: Work<_> = async { $body }.await;
            match finish(owned, work, $store.change_history).await {
                Ok((value, revision, changed)) => {
                    $store.write_timer.observe(started.elapsed());
                    super::wrote_revision(revision);
                    // This node reads its own writes at once; if the database cannot be read
                    // right now, the change feed brings them a moment later.
                    if let Err(error) = $store.refresh(&changed).await {
                        tracing::warn!(%error, "the snapshot will follow this write later");
                    }
                    break Ok(value);
                }
                Err(WriteError::Postgres(error))
                    if attempt < WRITE_ATTEMPTS && lost_race(&error) => {}
                Err(WriteError::Postgres(error)) => break Err(store_error(error)),
                Err(WriteError::Store(error)) => break Err(error),
            }
        }
    }};
}

impl PgStore {
    /// Connects to the database at `url`, bringing its schema up to date first
    /// ([`migrate`]), with a pool of at most `connections`.
    pub async fn connect(
        url: &str,
        connections: usize,
        timeouts: PostgresTimeouts,
    ) -> Result<Self, PostgresError> {
        Self::connect_with_tls(url, connections, timeouts, tls_connector(None)?).await
    }

    /// [`PgStore::connect`] speaking TLS with `tls` ([`tls_connector`]).
    pub async fn connect_with_tls(
        url: &str,
        connections: usize,
        timeouts: PostgresTimeouts,
        tls: MakeRustlsConnect,
    ) -> Result<Self, PostgresError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| PostgresError::Connect(describe(&error)))?;
        config.connect_timeout(timeouts.connect);
        config.options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            timeouts.statement.as_millis(),
            timeouts.statement.as_millis()
        ));
        migrate_with(&config, tls.clone()).await?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeouts.connect))
            .create_timeout(Some(timeouts.connect))
            .recycle_timeout(Some(timeouts.connect))
            .build()
            .map_err(|error| PostgresError::Connect(error.to_string()))?;
        let store = PgStore {
            pool,
            snapshot: Default::default(),
            heard_at: Default::default(),
            config,
            tls,
            write_timer: super::WriteTimer::default(),
            change_history: CHANGE_HISTORY,
        };
        store
            .reload_snapshot()
            .await
            .map_err(|error| PostgresError::Statement(error.to_string()))?;
        Ok(store)
    }

    /// Calls `observe` with the time each write from now on takes, from its transaction's
    /// start to its commit. Set once per store; later calls are ignored.
    pub fn observe_writes(&self, observe: impl Fn(Duration) + Send + Sync + 'static) {
        self.write_timer.set(observe);
    }

    /// Keeps the last `revisions` revisions of the change feed from now on (at least one).
    pub fn keep_change_history(mut self, revisions: i64) -> Self {
        self.change_history = revisions.max(1);
        self
    }

    async fn connection(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// The JSON text of each row's `record` for `sql`.
    async fn records<T: DeserializeOwned>(
        &self,
        table: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        let client = self.connection().await?;
        let rows = client.query(sql, params).await.map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let key: String = row.get(0);
                let text: String = row.get(1);
                record(table, &key, &text)
            })
            .collect()
    }

    async fn one<T: DeserializeOwned>(
        &self,
        table: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        Ok(self.records(table, sql, params).await?.pop())
    }

    /// The tenant settings, once initialised.
    pub async fn tenant(&self) -> Result<Option<Tenant>, StoreError> {
        let client = self.connection().await?;
        let row = client
            .query_one("SELECT tenant::text FROM installation", &[])
            .await
            .map_err(store_error)?;
        row.get::<_, Option<String>>(0)
            .map(|text| record("installation", "tenant", &text))
            .transpose()
    }

    /// The installation's key for hashing client secrets (as stored: the caller seals it),
    /// `fresh` stored on first use; every later caller reads the first writer's key.
    pub async fn secret_hash_key(&self, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        in_transaction!(self, |transaction| {
            let stored: Option<Vec<u8>> = transaction
                .query_one(
                    "UPDATE installation SET secret_hash_key = coalesce(secret_hash_key, $1)
                     RETURNING secret_hash_key",
                    &[&fresh],
                )
                .await?
                .get(0);
            let key =
                stored.ok_or_else(|| StoreError::Storage("secret hash key vanished".to_owned()))?;
            Ok((key, vec![("tenant", "secret_hash_key".to_owned())]))
        })
    }

    /// Replaces the stored client-secret key `current` with `replacement`; nothing changes if
    /// another writer got there first.
    pub async fn replace_secret_hash_key(
        &self,
        current: &[u8],
        replacement: &[u8],
    ) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            transaction
                .execute(
                    "UPDATE installation SET secret_hash_key = $2 WHERE secret_hash_key = $1",
                    &[&current, &replacement],
                )
                .await?;
            Ok(((), vec![("tenant", "secret_hash_key".to_owned())]))
        })
    }

    /// An application by `client_id`, from the snapshot.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let snapshot = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        Ok(snapshot.clients.get(client_id).cloned())
    }

    /// Every application.
    pub async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        self.records(
            "clients",
            "SELECT client_id, record::text FROM clients ORDER BY client_id COLLATE \"C\"",
            &[],
        )
        .await
    }

    /// Adds an application; its `client_id` must be new.
    pub async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            insert_client_into(transaction, client).await?;
            Ok(((), vec![("client", client.client_id.clone())]))
        })
    }

    /// Changes an existing application's record in one step (the row is locked while
    /// `change` applies), so two changes never undo each other. Returns the record written.
    pub async fn modify_client(
        &self,
        client_id: &str,
        change: impl Fn(&mut Client) + Send + Sync,
    ) -> Result<Client, StoreError> {
        let change = &change;
        in_transaction!(self, |transaction| {
            let row = transaction
                .query_opt(
                    "SELECT record::text FROM clients WHERE client_id = $1 FOR UPDATE",
                    &[&client_id],
                )
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no client {client_id}")))?;
            let mut client: Client = record("clients", client_id, &row.get::<_, String>(0))?;
            change(&mut client);
            transaction
                .execute(
                    "UPDATE clients SET record = $2::text::jsonb WHERE client_id = $1",
                    &[&client_id, &text(&client)],
                )
                .await?;
            Ok((client, vec![("client", client_id.to_owned())]))
        })
    }

    /// Deletes an application and its client grants in one transaction.
    pub async fn delete_client(&self, client_id: &str) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            let grants = grant_ids(transaction, "client_id", client_id).await?;
            let deleted = transaction
                .execute("DELETE FROM clients WHERE client_id = $1", &[&client_id])
                .await?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("no client {client_id}")).into());
            }
            let mut changed = vec![("client", client_id.to_owned())];
            changed.extend(grants.into_iter().map(|id| ("grant", id)));
            Ok(((), changed))
        })
    }

    /// An API by hookd's id for it.
    pub async fn api(&self, id: &str) -> Result<Option<Api>, StoreError> {
        self.one(
            "apis",
            "SELECT id, record::text FROM apis WHERE id = $1",
            &[&id],
        )
        .await
    }

    /// An API by its identifier (the audience), from the snapshot.
    pub async fn api_by_identifier(&self, identifier: &str) -> Result<Option<Api>, StoreError> {
        let snapshot = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        Ok(snapshot.apis.get(identifier).cloned())
    }

    /// Every API.
    pub async fn apis(&self) -> Result<Vec<Api>, StoreError> {
        self.records(
            "apis",
            "SELECT id, record::text FROM apis ORDER BY id COLLATE \"C\"",
            &[],
        )
        .await
    }

    /// Adds an API; its id and identifier must be new.
    pub async fn insert_api(&self, api: &Api) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            insert_api_into(transaction, api).await?;
            Ok(((), vec![("api", api.id.clone())]))
        })
    }

    /// Replaces an existing API's record; its identifier cannot change.
    pub async fn update_api(&self, api: &Api) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            let row = transaction
                .query_opt(
                    "SELECT identifier FROM apis WHERE id = $1 FOR UPDATE",
                    &[&api.id],
                )
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no API {}", api.id)))?;
            if row.get::<_, String>(0) != api.identifier {
                return Err(StoreError::Conflict("identifier cannot be changed".to_owned()).into());
            }
            transaction
                .execute(
                    "UPDATE apis SET record = $2::text::jsonb WHERE id = $1",
                    &[&api.id, &text(api)],
                )
                .await?;
            Ok(((), vec![("api", api.id.clone())]))
        })
    }

    /// Deletes an API and every grant for it, in one transaction.
    pub async fn delete_api(&self, id: &str) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            let identifier: String = transaction
                .query_opt("SELECT identifier FROM apis WHERE id = $1", &[&id])
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no API {id}")))?
                .get(0);
            let grants = grant_ids(transaction, "audience", &identifier).await?;
            transaction
                .execute("DELETE FROM apis WHERE id = $1", &[&id])
                .await?;
            let mut changed = vec![("api", id.to_owned())];
            changed.extend(grants.into_iter().map(|id| ("grant", id)));
            Ok(((), changed))
        })
    }

    /// Every client grant.
    pub async fn grants(&self) -> Result<Vec<ClientGrant>, StoreError> {
        self.records(
            "grants",
            "SELECT id, record::text FROM grants ORDER BY id COLLATE \"C\"",
            &[],
        )
        .await
    }

    /// A client grant by id.
    pub async fn grant(&self, id: &str) -> Result<Option<ClientGrant>, StoreError> {
        self.one(
            "grants",
            "SELECT id, record::text FROM grants WHERE id = $1",
            &[&id],
        )
        .await
    }

    /// The grant of `client_id` for `audience`, if there is one, from the snapshot.
    pub async fn grant_for(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<ClientGrant>, StoreError> {
        let snapshot = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        Ok(snapshot
            .grants
            .get(&(client_id.to_owned(), audience.to_owned()))
            .cloned())
    }

    /// Adds a client grant; the (client, audience) pair must be new, and both must exist.
    pub async fn insert_grant(&self, grant: &ClientGrant) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            insert_grant_into(transaction, grant).await?;
            Ok(((), vec![("grant", grant.id.clone())]))
        })
    }

    /// Replaces an existing grant's record (client and audience cannot change).
    pub async fn update_grant(&self, grant: &ClientGrant) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            let updated = transaction
                .execute(
                    "UPDATE grants SET record = $2::text::jsonb WHERE id = $1",
                    &[&grant.id, &text(grant)],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::NotFound(format!("no client grant {}", grant.id)).into());
            }
            Ok(((), vec![("grant", grant.id.clone())]))
        })
    }

    /// Deletes a client grant.
    pub async fn delete_grant(&self, id: &str) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            let deleted = transaction
                .execute("DELETE FROM grants WHERE id = $1", &[&id])
                .await?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("no client grant {id}")).into());
            }
            Ok(((), vec![("grant", id.to_owned())]))
        })
    }

    /// Writes the tenant and whatever the Management API's admin still lacks, in one
    /// transaction (see the sled store's `bootstrap`).
    pub async fn bootstrap(&self, admin: &AdminBootstrap<'_>) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            transaction
                .execute(
                    "UPDATE installation SET tenant = $1::text::jsonb",
                    &[&text(admin.tenant)],
                )
                .await?;
            let mut changed = vec![("tenant", "tenant".to_owned())];
            if let Some(api) = admin.api {
                insert_api_into(transaction, api).await?;
                changed.push(("api", api.id.clone()));
            }
            if let Some(client) = admin.client {
                insert_client_into(transaction, client).await?;
                changed.push(("client", client.client_id.clone()));
            }
            let replaced = transaction
                .query_opt(
                    "DELETE FROM grants WHERE client_id = $1 AND audience = $2 RETURNING id",
                    &[&admin.grant.client_id, &admin.grant.audience],
                )
                .await?;
            if let Some(row) = replaced {
                changed.push(("grant", row.get(0)));
            }
            insert_grant_into(transaction, admin.grant).await?;
            changed.push(("grant", admin.grant.id.clone()));
            Ok(((), changed))
        })
    }

    /// Moves the tenant to `tenant.issuer` in one transaction: the tenant record, the
    /// Management API's identifier (`from` becomes `to`) and every grant for it.
    pub async fn change_issuer(
        &self,
        tenant: &Tenant,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            transaction
                .execute(
                    "UPDATE installation SET tenant = $1::text::jsonb",
                    &[&text(tenant)],
                )
                .await?;
            let mut changed = vec![("tenant", "tenant".to_owned())];
            let moved = transaction
                .query_opt(
                    "SELECT id, record::text FROM apis WHERE identifier = $1 FOR UPDATE",
                    &[&from],
                )
                .await?;
            let grants: Vec<ClientGrant> = {
                let rows = transaction
                    .query(
                        "SELECT id, record::text FROM grants WHERE audience = $1",
                        &[&from],
                    )
                    .await?;
                rows.iter()
                    .map(|row| record("grants", &row.get::<_, String>(0), &row.get::<_, String>(1)))
                    .collect::<Result<_, _>>()?
            };
            if let Some(row) = moved {
                let id: String = row.get(0);
                let mut api: Api = record("apis", &id, &row.get::<_, String>(1))?;
                api.identifier = to.to_owned();
                // The grants' references move with the API's identifier (re-pointed below);
                // deferring is not needed because they are rewritten before the API.
                transaction
                    .execute("DELETE FROM grants WHERE audience = $1", &[&from])
                    .await?;
                transaction
                    .execute(
                        "UPDATE apis SET identifier = $2, record = $3::text::jsonb WHERE id = $1",
                        &[&id, &to, &text(&api)],
                    )
                    .await
                    .map_err(|error| match unique_violation(&error) {
                        Some(_) => WriteError::Store(StoreError::Conflict(format!(
                            "an API with identifier {to} exists"
                        ))),
                        None => WriteError::Postgres(error),
                    })?;
                changed.push(("api", id));
                for grant in grants {
                    let grant = ClientGrant {
                        audience: to.to_owned(),
                        ..grant
                    };
                    insert_grant_into(transaction, &grant).await?;
                    changed.push(("grant", grant.id));
                }
            }
            Ok(((), changed))
        })
    }

    /// Every hook.
    pub async fn hooks(&self) -> Result<Vec<Hook>, StoreError> {
        self.records(
            "hooks",
            "SELECT id, record::text FROM hooks ORDER BY id COLLATE \"C\"",
            &[],
        )
        .await
    }

    /// A hook by id.
    pub async fn hook(&self, id: &str) -> Result<Option<Hook>, StoreError> {
        self.one(
            "hooks",
            "SELECT id, record::text FROM hooks WHERE id = $1",
            &[&id],
        )
        .await
    }

    /// The enabled hook of `trigger`, if any.
    pub async fn enabled_hook(
        &self,
        trigger: ExtensibilityPoint,
    ) -> Result<Option<Hook>, StoreError> {
        self.one(
            "hooks",
            "SELECT id, record::text FROM hooks WHERE trigger_id = $1 AND enabled",
            &[&trigger.trigger_id()],
        )
        .await
    }

    /// A stored module by sha256.
    pub async fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.connection().await?;
        let row = client
            .query_opt("SELECT bytes FROM modules WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(store_error)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Adds a hook with its first module (if it has a version) in one transaction. The name
    /// must be new; if the hook is enabled, every other hook of its trigger is disabled in the
    /// same transaction.
    pub async fn insert_hook(&self, hook: &Hook, module: &[u8]) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            if let Some(version) = hook.versions.last() {
                store_module(transaction, &version.sha256, module).await?;
            }
            let mut changed = disable_others(transaction, hook).await?;
            transaction
                .execute(
                    "INSERT INTO hooks (id, name, trigger_id, enabled, active_version, record)
                     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)",
                    &[
                        &hook.id,
                        &hook.name,
                        &hook.trigger.trigger_id(),
                        &hook.enabled,
                        &hook.active_version,
                        &text(hook),
                    ],
                )
                .await
                .map_err(|error| hook_conflict(error, hook))?;
            changed.push(("hook", hook.id.clone()));
            Ok(((), changed))
        })
    }

    /// Stores a new module version of a hook and the updated hook record in one transaction
    /// (the caller appended the version to `hook.versions`).
    pub async fn add_hook_version(&self, hook: &Hook, module: &[u8]) -> Result<(), StoreError> {
        let Some(version) = hook.versions.last() else {
            return Err(StoreError::NotFound(
                "the hook has no version to add".to_owned(),
            ));
        };
        in_transaction!(self, |transaction| {
            store_module(transaction, &version.sha256, module).await?;
            let changed = write_hook_row(transaction, hook).await?;
            Ok(((), changed))
        })
    }

    /// Replaces a hook's record. If it is enabled, every other hook of its trigger is
    /// disabled in the same transaction.
    pub async fn update_hook(&self, hook: &Hook) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            let changed = write_hook_row(transaction, hook).await?;
            Ok(((), changed))
        })
    }

    /// Deletes a hook and the modules no other hook uses, in one transaction.
    pub async fn delete_hook(&self, id: &str) -> Result<Hook, StoreError> {
        in_transaction!(self, |transaction| {
            let row = transaction
                .query_opt(
                    "DELETE FROM hooks WHERE id = $1 RETURNING record::text",
                    &[&id],
                )
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no hook {id}")))?;
            let hook: Hook = record("hooks", id, &row.get::<_, String>(0))?;
            transaction
                .execute("DELETE FROM hook_logs WHERE hook_id = $1", &[&id])
                .await?;
            let versions: Vec<String> = hook.versions.iter().map(|v| v.sha256.clone()).collect();
            // A module stays while any remaining hook lists it among its versions.
            transaction
                .execute(
                    "DELETE FROM modules m WHERE m.sha256 = ANY($1)
                     AND NOT EXISTS (
                         SELECT 1 FROM hooks h, jsonb_array_elements(h.record -> 'versions') v
                         WHERE v ->> 'sha256' = m.sha256
                     )",
                    &[&versions],
                )
                .await?;
            Ok((hook, vec![("hook", id.to_owned())]))
        })
    }

    /// Every signing key.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.records(
            "signing_keys",
            "SELECT kid, record::text FROM signing_keys ORDER BY kid COLLATE \"C\"",
            &[],
        )
        .await
    }

    /// Replaces the stored signing keys with `keys` if they are still `expected` (by kid), in
    /// one transaction that holds the key lock: of two nodes rotating at once, one wins and
    /// the other gets `Conflict`.
    pub async fn replace_signing_keys(
        &self,
        expected: &[SigningKey],
        keys: &[SigningKey],
    ) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK])
                .await?;
            let rows = transaction
                .query("SELECT kid FROM signing_keys", &[])
                .await?;
            let mut stored: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let mut wanted: Vec<String> = expected.iter().map(|key| key.kid.clone()).collect();
            stored.sort_unstable();
            wanted.sort_unstable();
            if stored != wanted {
                return Err(StoreError::Conflict(
                    "the signing keys changed since they were read (another node rotated them)"
                        .to_owned(),
                )
                .into());
            }
            write_keys(transaction, keys).await?;
            Ok(((), vec![("keys", "signing".to_owned())]))
        })
    }

    /// Replaces the stored set of signing keys with `keys` in one transaction.
    pub async fn put_signing_keys(&self, keys: &[SigningKey]) -> Result<(), StoreError> {
        in_transaction!(self, |transaction| {
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK])
                .await?;
            write_keys(transaction, keys).await?;
            Ok(((), vec![("keys", "signing".to_owned())]))
        })
    }

    /// The revisions notified on the change feed from now on, on a connection of its own
    /// (outside the pool). The channel closes when that connection ends (the database went
    /// away, or an operator terminated it); the caller listens again and catches up with
    /// [`PgStore::changes_since`], which it also polls, since a notification can be missed.
    pub async fn listen(&self) -> Result<tokio::sync::mpsc::Receiver<i64>, StoreError> {
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(store_error)?;
        let (notify, notified) = tokio::sync::mpsc::channel(64);
        let statement = format!("LISTEN {CHANGES_CHANNEL}");
        let listening = client.batch_execute(&statement);
        // The connection must be driven for the LISTEN to complete; the notifications it
        // carries afterwards go to the channel.
        let driver = tokio::spawn(async move {
            let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            futures_util::pin_mut!(messages);
            while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(notification)) => {
                        if let Ok(revision) = notification.payload().parse::<i64>() {
                            // A full channel only means the listener is behind: it catches
                            // up from the log anyway.
                            let _ = notify.try_send(revision);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        listening.await.map_err(store_error)?;
        // The client stays alive as long as the connection is driven.
        tokio::spawn(async move {
            let _ = driver.await;
            drop(client);
        });
        Ok(notified)
    }

    /// What changed after revision `applied`: every entity changed up to the current revision
    /// (the same entity may appear more than once), or, when those changes are no longer all
    /// kept, that the caller must reload everything.
    pub async fn changes_since(&self, applied: i64) -> Result<ChangesSince, StoreError> {
        let client = self.connection().await?;
        let row = client
            .query_one("SELECT value, oldest_kept FROM revision", &[])
            .await
            .map_err(store_error)?;
        let (current, oldest_kept): (i64, i64) = (row.get(0), row.get(1));
        if current > applied && applied + 1 < oldest_kept {
            return Ok(ChangesSince::Pruned { current });
        }
        let rows = client
            .query(
                "SELECT DISTINCT entity, entity_id FROM changes
                 WHERE revision > $1 AND revision <= $2",
                &[&applied, &current],
            )
            .await
            .map_err(store_error)?;
        Ok(ChangesSince::Changed {
            current,
            changed: rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
        })
    }

    /// Waits (up to a minute) until no other node is starting, and keeps them waiting while
    /// the returned guard lives: the tenant, the admin and the first signing keys are then
    /// made by one node, and the others find them.
    pub async fn startup_lock(&self) -> Result<StartupLock, StoreError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(store_error)?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute("SET statement_timeout = '60s'; SET lock_timeout = '60s'")
            .await
            .map_err(store_error)?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&STARTUP_LOCK])
            .await
            .map_err(store_error)?;
        Ok(StartupLock {
            _client: client,
            _driver: driver,
        })
    }

    /// Reads every application, API and grant into a new snapshot and swaps it in whole;
    /// returns the revision read just before, from which following the change feed replays
    /// nothing the snapshot lacks (replaying what it has changes nothing).
    pub async fn reload_snapshot(&self) -> Result<i64, StoreError> {
        let revision = self.revision().await?;
        let mut fresh = Snapshot::default();
        for client in self.clients().await? {
            fresh.put_client(&client.client_id.clone(), Some(client));
        }
        for api in self.apis().await? {
            fresh.put_api(&api.id.clone(), Some(api));
        }
        for grant in self.grants().await? {
            fresh.put_grant(&grant.id.clone(), Some(grant));
        }
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(revision)
    }

    /// Brings the snapshot up to date with what changed (`(entity, id)` pairs from the change
    /// feed or this node's own writes): each changed application, API and grant is read again,
    /// and removed when it is gone. Applying a change twice changes nothing.
    pub async fn refresh<E: AsRef<str>, I: AsRef<str>>(
        &self,
        changed: &[(E, I)],
    ) -> Result<(), StoreError> {
        let (mut clients, mut apis, mut grants) = (Vec::new(), Vec::new(), Vec::new());
        for (entity, id) in changed {
            let id = id.as_ref().to_owned();
            match entity.as_ref() {
                "client" => clients.push(id),
                "api" => apis.push(id),
                "grant" => grants.push(id),
                _ => {}
            }
        }
        let mut read_clients = Vec::new();
        for id in clients {
            let client = self.read_client(&id).await?;
            read_clients.push((id, client));
        }
        let mut read_apis = Vec::new();
        for id in apis {
            let api = PgStore::api(self, &id).await?;
            read_apis.push((id, api));
        }
        let mut read_grants = Vec::new();
        for id in grants {
            let grant = PgStore::grant(self, &id).await?;
            read_grants.push((id, grant));
        }
        let mut snapshot = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        for (id, client) in read_clients {
            snapshot.put_client(&id, client);
        }
        for (id, api) in read_apis {
            snapshot.put_api(&id, api);
        }
        for (id, grant) in read_grants {
            snapshot.put_grant(&id, grant);
        }
        Ok(())
    }

    /// An application as the database has it now.
    async fn read_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.one(
            "clients",
            "SELECT client_id, record::text FROM clients WHERE client_id = $1",
            &[&client_id],
        )
        .await
    }

    /// The change feed reached the database at `now` (seconds since the Unix epoch).
    pub fn heard_from_database(&self, now: u64) {
        self.heard_at
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Seconds since the change feed last reached the database, at `now`.
    pub fn silent_for(&self, now: u64) -> u64 {
        now.saturating_sub(self.heard_at.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The change feed's current revision.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let client = self.connection().await?;
        let row = client
            .query_one("SELECT value FROM revision", &[])
            .await
            .map_err(store_error)?;
        Ok(row.get(0))
    }
}

/// How long a node that stopped reporting stays in the list of nodes, in seconds.
pub const NODE_FORGOTTEN_AFTER: u64 = 24 * 60 * 60;

impl PgStore {
    /// Records what node `report.name` reports (replacing what it reported before), and
    /// forgets nodes silent for longer than [`NODE_FORGOTTEN_AFTER`].
    pub async fn report_node(&self, report: &NodeReport) -> Result<(), StoreError> {
        let client = self.connection().await?;
        let started_at = seconds(report.started_at);
        let heartbeat_at = seconds(report.heartbeat_at);
        client
            .execute(
                "INSERT INTO nodes
                     (name, address, version, started_at, applied_revision, heartbeat_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET
                     address = excluded.address, version = excluded.version,
                     started_at = excluded.started_at,
                     applied_revision = excluded.applied_revision,
                     heartbeat_at = excluded.heartbeat_at",
                &[
                    &report.name,
                    &report.address,
                    &report.version,
                    &started_at,
                    &report.applied_revision.unwrap_or(0),
                    &heartbeat_at,
                ],
            )
            .await
            .map_err(store_error)?;
        client
            .execute(
                "DELETE FROM nodes WHERE heartbeat_at < $1",
                &[&(heartbeat_at - seconds(NODE_FORGOTTEN_AFTER))],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Every node that reported lately, by name, and the current revision.
    pub async fn nodes(&self) -> Result<(i64, Vec<NodeReport>), StoreError> {
        let client = self.connection().await?;
        let current: i64 = client
            .query_one("SELECT value FROM revision", &[])
            .await
            .map_err(store_error)?
            .get(0);
        let rows = client
            .query(
                "SELECT name, address, version, started_at, applied_revision, heartbeat_at
                 FROM nodes ORDER BY name",
                &[],
            )
            .await
            .map_err(store_error)?;
        let nodes = rows
            .iter()
            .map(|row| NodeReport {
                name: row.get(0),
                address: row.get(1),
                version: row.get(2),
                started_at: row.get::<_, i64>(3).max(0) as u64,
                applied_revision: Some(row.get(4)),
                heartbeat_at: row.get::<_, i64>(5).max(0) as u64,
            })
            .collect();
        Ok((current, nodes))
    }

    /// Appends hook invocations written on node `node` (each a hook id and the entry's JSON
    /// text) in one transaction, keeping the newest `kept_per_hook` of each hook.
    pub async fn append_hook_logs(
        &self,
        node: &str,
        entries: &[(String, String)],
        kept_per_hook: usize,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection().await?;
        let transaction = connection.transaction().await.map_err(store_error)?;
        // The counter row's lock orders the batches: sequence numbers commit in order.
        let last: i64 = transaction
            .query_one(
                "UPDATE hook_log_sequence SET value = value + $1 RETURNING value",
                &[&(entries.len() as i64)],
            )
            .await
            .map_err(store_error)?
            .get(0);
        let first = last - entries.len() as i64 + 1;
        let sequence: Vec<i64> = (first..=last).collect();
        let hook_ids: Vec<&str> = entries.iter().map(|(hook, _)| hook.as_str()).collect();
        let texts: Vec<&str> = entries.iter().map(|(_, text)| text.as_str()).collect();
        transaction
            .execute(
                "INSERT INTO hook_logs (seq, hook_id, node, entry)
                 SELECT seq, hook_id, $4, entry::jsonb
                 FROM unnest($1::bigint[], $2::text[], $3::text[]) AS batch (seq, hook_id, entry)",
                &[&sequence, &hook_ids, &texts, &node],
            )
            .await
            .map_err(store_error)?;
        let mut hooks = hook_ids.clone();
        hooks.sort_unstable();
        hooks.dedup();
        transaction
            .execute(
                "DELETE FROM hook_logs l USING (
                     SELECT hook_id, seq FROM (
                         SELECT hook_id, seq,
                                row_number() OVER (PARTITION BY hook_id ORDER BY seq DESC) AS n
                         FROM hook_logs WHERE hook_id = ANY($1)
                     ) ranked WHERE n > $2
                 ) old
                 WHERE l.seq = old.seq",
                &[&hooks, &(kept_per_hook as i64)],
            )
            .await
            .map_err(store_error)?;
        transaction.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// The newest `limit` invocations of hook `hook_id` from every node, oldest first, as
    /// their entries' JSON text.
    pub async fn hook_logs(&self, hook_id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let client = self.connection().await?;
        let rows = client
            .query(
                "SELECT entry::text FROM (
                     SELECT seq, entry FROM hook_logs WHERE hook_id = $1
                     ORDER BY seq DESC LIMIT $2
                 ) newest ORDER BY seq",
                &[&hook_id, &(limit as i64)],
            )
            .await
            .map_err(store_error)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// The sequence number of the newest invocation logged by any node.
    pub async fn last_hook_log(&self) -> Result<i64, StoreError> {
        let client = self.connection().await?;
        let row = client
            .query_one("SELECT value FROM hook_log_sequence", &[])
            .await
            .map_err(store_error)?;
        Ok(row.get(0))
    }

    /// Up to `limit` invocations logged after sequence number `after` by nodes other than
    /// `node`, in order, each with its sequence number and its entry's JSON text.
    pub async fn hook_logs_after(
        &self,
        after: i64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let client = self.connection().await?;
        let rows = client
            .query(
                "SELECT seq, entry::text FROM hook_logs
                 WHERE seq > $1 AND node <> $2 ORDER BY seq LIMIT $3",
                &[&after, &node, &(limit as i64)],
            )
            .await
            .map_err(store_error)?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }
}

/// Seconds since the Unix epoch as PostgreSQL's `bigint`.
fn seconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What [`PgStore::changes_since`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangesSince {
    /// The current revision and the `(entity, id)` pairs changed since the one asked about.
    Changed {
        /// The current revision.
        current: i64,
        /// What changed.
        changed: Vec<(String, String)>,
    },
    /// Some changes since the revision asked about are no longer kept: reload everything.
    Pruned {
        /// The current revision.
        current: i64,
    },
}

/// The records a token request reads, by the keys it reads them by.
#[derive(Debug, Default)]
struct Snapshot {
    clients: std::collections::HashMap<String, Client>,
    /// APIs by identifier, and each API's identifier by id.
    apis: std::collections::HashMap<String, Api>,
    api_identifiers: std::collections::HashMap<String, String>,
    /// Grants by (client, audience), and each grant's pair by id.
    grants: std::collections::HashMap<(String, String), ClientGrant>,
    grant_pairs: std::collections::HashMap<String, (String, String)>,
}

impl Snapshot {
    fn put_client(&mut self, id: &str, client: Option<Client>) {
        match client {
            Some(client) => self.clients.insert(id.to_owned(), client),
            None => self.clients.remove(id),
        };
    }

    fn put_api(&mut self, id: &str, api: Option<Api>) {
        if let Some(identifier) = self.api_identifiers.remove(id) {
            self.apis.remove(&identifier);
        }
        if let Some(api) = api {
            self.api_identifiers
                .insert(id.to_owned(), api.identifier.clone());
            self.apis.insert(api.identifier.clone(), api);
        }
    }

    fn put_grant(&mut self, id: &str, grant: Option<ClientGrant>) {
        if let Some(pair) = self.grant_pairs.remove(id) {
            self.grants.remove(&pair);
        }
        if let Some(grant) = grant {
            let pair = (grant.client_id.clone(), grant.audience.clone());
            self.grant_pairs.insert(id.to_owned(), pair.clone());
            self.grants.insert(pair, grant);
        }
    }
}

/// Why a write inside a transaction stopped: a rule of the store, or the database.
#[derive(Debug)]
enum WriteError {
    Store(StoreError),
    Postgres(tokio_postgres::Error),
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        WriteError::Store(error)
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(error: tokio_postgres::Error) -> Self {
        WriteError::Postgres(error)
    }
}

async fn insert_client_into(
    transaction: &Transaction<'_>,
    client: &Client,
) -> Result<(), WriteError> {
    transaction
        .execute(
            "INSERT INTO clients (client_id, record) VALUES ($1, $2::text::jsonb)",
            &[&client.client_id, &text(client)],
        )
        .await
        .map_err(|error| match unique_violation(&error) {
            Some(_) => WriteError::Store(StoreError::Conflict(format!(
                "client {} exists",
                client.client_id
            ))),
            None => WriteError::Postgres(error),
        })?;
    Ok(())
}

async fn insert_api_into(transaction: &Transaction<'_>, api: &Api) -> Result<(), WriteError> {
    transaction
        .execute(
            "INSERT INTO apis (id, identifier, record) VALUES ($1, $2, $3::text::jsonb)",
            &[&api.id, &api.identifier, &text(api)],
        )
        .await
        .map_err(|error| match unique_violation(&error) {
            Some(_) => WriteError::Store(StoreError::Conflict(format!(
                "an API with identifier {} exists",
                api.identifier
            ))),
            None => WriteError::Postgres(error),
        })?;
    Ok(())
}

async fn insert_grant_into(
    transaction: &Transaction<'_>,
    grant: &ClientGrant,
) -> Result<(), WriteError> {
    transaction
        .execute(
            "INSERT INTO grants (id, client_id, audience, record)
             VALUES ($1, $2, $3, $4::text::jsonb)",
            &[&grant.id, &grant.client_id, &grant.audience, &text(grant)],
        )
        .await
        .map_err(|error| {
            if unique_violation(&error).is_some() {
                WriteError::Store(StoreError::Conflict(format!(
                    "client {} already has a grant for {}",
                    grant.client_id, grant.audience
                )))
            } else if foreign_key_violation(&error) {
                WriteError::Store(StoreError::NotFound(format!(
                    "no client {} or no API {}",
                    grant.client_id, grant.audience
                )))
            } else {
                WriteError::Postgres(error)
            }
        })?;
    Ok(())
}

/// The ids of the grants whose `column` (`client_id` or `audience`) is `value`.
async fn grant_ids(
    transaction: &Transaction<'_>,
    column: &str,
    value: &str,
) -> Result<Vec<String>, WriteError> {
    let sql = match column {
        "client_id" => "SELECT id FROM grants WHERE client_id = $1",
        _ => "SELECT id FROM grants WHERE audience = $1",
    };
    let rows = transaction.query(sql, &[&value]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Replaces every stored signing key with `keys`.
async fn write_keys(transaction: &Transaction<'_>, keys: &[SigningKey]) -> Result<(), WriteError> {
    transaction.execute("DELETE FROM signing_keys", &[]).await?;
    for key in keys {
        transaction
            .execute(
                "INSERT INTO signing_keys (kid, record) VALUES ($1, $2::text::jsonb)",
                &[&key.kid, &text(key)],
            )
            .await?;
    }
    Ok(())
}

/// Stores a module under its sha256 (a module is immutable: storing it again changes nothing).
async fn store_module(
    transaction: &Transaction<'_>,
    sha256: &str,
    module: &[u8],
) -> Result<(), WriteError> {
    transaction
        .execute(
            "INSERT INTO modules (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
            &[&sha256, &module],
        )
        .await?;
    Ok(())
}

/// When `hook` is enabled, disables the other enabled hook of its trigger (record and
/// column); returns what changed.
async fn disable_others(
    transaction: &Transaction<'_>,
    hook: &Hook,
) -> Result<Vec<(&'static str, String)>, WriteError> {
    if !hook.enabled {
        return Ok(Vec::new());
    }
    let rows = transaction
        .query(
            "UPDATE hooks SET enabled = false, record = jsonb_set(record, '{enabled}', 'false')
             WHERE trigger_id = $1 AND enabled AND id <> $2 RETURNING id",
            &[&hook.trigger.trigger_id(), &hook.id],
        )
        .await?;
    Ok(rows.iter().map(|row| ("hook", row.get(0))).collect())
}

/// Replaces an existing hook's row (after disabling the other enabled hook of its trigger
/// when it is enabled); returns what changed.
async fn write_hook_row(
    transaction: &Transaction<'_>,
    hook: &Hook,
) -> Result<Vec<(&'static str, String)>, WriteError> {
    let exists = transaction
        .query_opt("SELECT 1 FROM hooks WHERE id = $1 FOR UPDATE", &[&hook.id])
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("no hook {}", hook.id)).into());
    }
    let mut changed = disable_others(transaction, hook).await?;
    transaction
        .execute(
            "UPDATE hooks SET name = $2, enabled = $3, active_version = $4,
             record = $5::text::jsonb WHERE id = $1",
            &[
                &hook.id,
                &hook.name,
                &hook.enabled,
                &hook.active_version,
                &text(hook),
            ],
        )
        .await
        .map_err(|error| hook_conflict(error, hook))?;
    changed.push(("hook", hook.id.clone()));
    Ok(changed)
}

/// A hook write's uniqueness failure as the store reports it: a name in use is a conflict; a
/// lost race for the trigger's one enabled slot is left to [`PgStore::write`] to retry.
fn hook_conflict(error: tokio_postgres::Error, hook: &Hook) -> WriteError {
    match unique_violation(&error).as_deref() {
        Some("hooks_name_key" | "hooks_pkey") => WriteError::Store(StoreError::Conflict(format!(
            "a hook named {} exists",
            hook.name
        ))),
        _ => WriteError::Postgres(error),
    }
}
