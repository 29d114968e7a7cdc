//! Persistence: one implementation over sqlx's `Any` driver, so the same SQL text (with `$N`
//! placeholders, which SQLite also accepts) runs on SQLite and on PostgreSQL. The backend is
//! chosen by `DATABASE_URL`; only migrations (separate folders) and the row-locking suffix of the
//! queue's claim differ between them.
//!
//! Every write that spans several rows runs in one transaction (`BEGIN IMMEDIATE` on SQLite, so
//! that two writers never deadlock on a lock upgrade). Times are Unix milliseconds, ids UUID text.

mod contacts;
mod lifecycle;
mod messages;
mod metrics;
mod rows;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor, SqlSafeStr, Transaction};

pub use contacts::{Contact, InboundMessage, InboundOutcome, OptChange};
pub use lifecycle::{ApplyOutcome, AttemptOutcome, AttemptRecord, AttemptResult, Claim, MessageRef, StatusSource};
pub use messages::{ListFilter, MessageRecord, StatusLogEntry};
pub use metrics::{Granularity, MetricsBucket, PhoneErrorRecord, PhonePerformance};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row held a value the code cannot read (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the embedded default.
    Sqlite,
    /// PostgreSQL: production, several instances.
    Postgres,
}

/// The database: a connection pool and the backend it talks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "idempotency key", include_str!("../../migrations/sqlite/0002_idempotency_key.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "idempotency key", include_str!("../../migrations/postgres/0002_idempotency_key.sql")),
];

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`). A SQLite file and its folder are
    /// created if missing, and the file is switched to WAL mode.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url),
            Backend::Postgres => url.to_owned(),
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        Ok(Self { pool, backend })
    }

    /// Applies the migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let source = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = source
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(*version, Cow::Borrowed(*name), MigrationType::Simple, AssertSqlSafe(*sql).into_sql_str(), false)
            })
            .collect();
        Migrator::with_migrations(migrations).run(&self.pool).await?;
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for the SQL queue that shares it.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a write transaction.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite's write transaction already excludes
    /// every other writer.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the folder of a SQLite file and asks sqlx to create the file.
fn prepare_sqlite_url(url: &str) -> String {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if !path.is_empty()
        && !path.starts_with(':')
        && let Some(parent) = std::path::Path::new(path).parent()
    {
        let _ = std::fs::create_dir_all(parent);
    }
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
