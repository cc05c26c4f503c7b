//! PostgreSQL, the store several nodes share: its schema, made by migrations embedded in the
//! binary and applied once under an advisory lock however many nodes start together. A node
//! refuses a database whose schema is newer than the one it knows.

use tokio_postgres::NoTls;

/// The schema version this hookd knows.
pub const SCHEMA_VERSION: i32 = 1;

/// The migrations, in order: entry `i` makes version `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [include_str!("postgres/schema_1.sql")];

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
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
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
