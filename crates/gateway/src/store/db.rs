//! The store: connection pools for reads, one batching writer for every write, and the
//! migrations of each backend. The backend is chosen by `DATABASE_URL`.
//!
//! Reads run the same SQL text (with `$N` placeholders, which SQLite also accepts) on either
//! pool, decoding rows into typed records. Writes go through the writer (see [`super::write`]).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, SqlSafeStr, SqlitePool};

use super::error::StoreError;
use super::write::command::{Command, Reply};
use super::write::routes::Outbox;
use super::write::{PgExecutor, SqliteExecutor, Writer};

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the embedded default.
    Sqlite,
    /// PostgreSQL: production, several instances.
    Postgres,
}

/// How the store connects.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the read pool (`DATABASE_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// How long a read waits for a free connection before the database counts as unavailable
    /// (`DATABASE_ACQUIRE_TIMEOUT_MS`).
    pub acquire_timeout: Duration,
    /// The most commands one write batch carries (`WRITER_MAX_BATCH`).
    pub max_batch: usize,
    /// Batches run at once on PostgreSQL, each on a connection of its own (`WRITER_CONNECTIONS`);
    /// SQLite has one writer.
    pub writers: usize,
    /// Free-form content only inside the contact's 24-hour window: a new message outside it is
    /// refused unless it has a fallback template, which is then sent instead; a due message is
    /// checked again when claimed (`WHATSAPP_WINDOW_CHECK`).
    pub window_check: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout: Duration::from_secs(5), max_batch: 512, writers: 3, window_check: false }
    }
}

/// A read pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same read on whichever pool the store has: `$pool` is bound to the concrete pool in
/// each arm, so the body is type-checked once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.pool() {
            $crate::store::db::Pool::Postgres($pool) => $body,
            $crate::store::db::Pool::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    backend: Backend,
    writer: Writer,
    window_check: bool,
    outbox: Outbox,
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "idempotency key", include_str!("../../migrations/sqlite/0002_idempotency_key.sql")),
    (3, "batched writes", include_str!("../../migrations/sqlite/0003_batched_writes.sql")),
    (4, "fewer writes", include_str!("../../migrations/sqlite/0004_fewer_writes.sql")),
    (5, "dead letter", include_str!("../../migrations/sqlite/0005_dead_letter.sql")),
    (6, "validity", include_str!("../../migrations/sqlite/0006_validity.sql")),
    (7, "fallback", include_str!("../../migrations/sqlite/0007_fallback.sql")),
    (8, "suppression", include_str!("../../migrations/sqlite/0008_suppression.sql")),
    (9, "poll", include_str!("../../migrations/sqlite/0009_poll.sql")),
    (10, "events", include_str!("../../migrations/sqlite/0010_events.sql")),
    (11, "lean outbox", include_str!("../../migrations/sqlite/0011_lean_outbox.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "idempotency key", include_str!("../../migrations/postgres/0002_idempotency_key.sql")),
    (3, "batched writes", include_str!("../../migrations/postgres/0003_batched_writes.sql")),
    (4, "fewer writes", include_str!("../../migrations/postgres/0004_fewer_writes.sql")),
    (5, "dead letter", include_str!("../../migrations/postgres/0005_dead_letter.sql")),
    (6, "validity", include_str!("../../migrations/postgres/0006_validity.sql")),
    (7, "fallback", include_str!("../../migrations/postgres/0007_fallback.sql")),
    (8, "suppression", include_str!("../../migrations/postgres/0008_suppression.sql")),
    (9, "poll", include_str!("../../migrations/postgres/0009_poll.sql")),
    (10, "events", include_str!("../../migrations/postgres/0010_events.sql")),
    (11, "lean outbox", include_str!("../../migrations/postgres/0011_lean_outbox.sql")),
];

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`) and starts the writer. A SQLite file
    /// and its folder are created if missing, and the file is switched to WAL mode.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        // Each writer adds to its own all-phones rollup shard, so that writers do not wait on one row.
        let first_shard = fastrand::u32(..super::write::rollups::ALL_PHONES_SHARDS);
        let shard = |n: usize| format!("*{}", (first_shard + n as u32) % super::write::rollups::ALL_PHONES_SHARDS);
        let outbox = Outbox::default();
        let (pool, backend, writer) = if url.starts_with("sqlite:") {
            let path = sqlite_path(url);
            let connect = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.clamp(1, 8))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            let writer = Writer::spawn(
                vec![SqliteExecutor::new(path, shard(0), outbox.clone())],
                Vec::new(),
                options.max_batch,
                options.acquire_timeout,
                fault(),
            )?;
            (Pool::Sqlite(pool), Backend::Sqlite, writer)
        } else {
            let connect = loopback_without_tls(url, url.parse()?);
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.clone())
                .await?;
            // The writers have connections of their own, outside the read pool; new messages have a
            // lane (and a connection, and a rollup shard) of their own, so that an API request
            // never waits behind a batch of claims and callbacks.
            let writers = options.writers.max(1);
            let executors =
                (0..writers).map(|n| PgExecutor::new(connect.clone(), options.acquire_timeout, shard(n), outbox.clone())).collect();
            let inserts = vec![PgExecutor::new(connect.clone(), options.acquire_timeout, shard(writers), outbox.clone())];
            let writer = Writer::spawn(executors, inserts, options.max_batch, options.acquire_timeout, fault())?;
            (Pool::Postgres(pool), Backend::Postgres, writer)
        };
        Ok(Self { inner: Arc::new(Inner { pool, backend, writer, window_check: options.window_check, outbox }) })
    }

    /// Applies the migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let source = match self.inner.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = source
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(*version, Cow::Borrowed(*name), MigrationType::Simple, AssertSqlSafe(*sql).into_sql_str(), false)
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        match &self.inner.pool {
            Pool::Postgres(pool) => migrator.run(pool).await?,
            Pool::Sqlite(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Has the writers open their connections and prepare their statements (the schema must be
    /// in place), so that the first requests after a start do not wait for that. Bounded by the
    /// acquire timeout; a writer that cannot get ready tries again on its first batch.
    pub async fn warm(&self) {
        self.inner.writer.warm().await;
    }

    /// The outbox the writers share with the dispatcher.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// Whether free-form content is kept to the contact's 24-hour window.
    pub(crate) fn window_check(&self) -> bool {
        self.inner.window_check
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop)?);
        Ok(())
    }

    /// Hands a write to the writer and waits until it is committed.
    pub(crate) async fn submit(&self, command: Command) -> Result<Reply, StoreError> {
        self.inner.writer.submit(command).await
    }

    /// Batches the writer committed, and failed batches it split to isolate a failing command.
    pub fn writer_stats(&self) -> (u64, u64) {
        let stats = self.inner.writer.stats();
        (stats.batches.load(std::sync::atomic::Ordering::Relaxed), stats.isolations.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Closes the read pool. The writer's thread ends once the last handle of the store is gone.
    pub async fn close(&self) {
        match &self.inner.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A server on this machine is reached without TLS unless the URL asks for it (`sslmode`): TLS
/// on loopback protects nothing, and costs much. sqlx does not set `TCP_NODELAY`, and on
/// loopback (a 64 KiB MSS) rustls' 16 KiB records then meet the server's delayed ACK: a statement
/// of more than one record (a batch of new messages, of events) waited ~40 ms for it. Measured with
/// `scripts/bench`: PostgreSQL end to end 830 → 983 msg/s, accept p99 72 → 46 ms.
fn loopback_without_tls(url: &str, options: PgConnectOptions) -> PgConnectOptions {
    let asks = url.split_once('?').is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("sslmode=")));
    let host = options.get_host();
    let loopback = host == "localhost" || host.starts_with('/') || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback && !asks && std::env::var_os("PGSSLMODE").is_none() {
        options.ssl_mode(sqlx::postgres::PgSslMode::Disable)
    } else {
        options
    }
}

/// The crash tests' fault hook: `WG_FAULT_ABORT_AFTER_COMMIT=<reference or SID>` makes the
/// process abort right after committing a batch that carries a new message with that reference
/// or a status report (or an incoming message) with that SID, before anyone is answered.
fn fault() -> Option<String> {
    std::env::var("WG_FAULT_ABORT_AFTER_COMMIT").ok().filter(|v| !v.is_empty())
}

/// The file of a `sqlite://` URL, its folder created if missing.
fn sqlite_path(url: &str) -> PathBuf {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = PathBuf::from(rest.split('?').next().unwrap_or_default());
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(parent);
    }
    path
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};

    use super::loopback_without_tls;

    fn mode(url: &str) -> PgSslMode {
        loopback_without_tls(url, url.parse::<PgConnectOptions>().unwrap()).get_ssl_mode()
    }

    #[test]
    fn a_server_on_this_machine_is_reached_without_tls_unless_the_url_asks() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        assert!(matches!(mode("postgres://postgres@127.0.0.1:5432/db"), PgSslMode::Disable));
        assert!(matches!(mode("postgres://postgres@localhost/db"), PgSslMode::Disable));
        assert!(matches!(mode("postgres://postgres@127.0.0.1/db?sslmode=require"), PgSslMode::Require));
        assert!(matches!(mode("postgres://postgres@db.internal:5432/db"), PgSslMode::Prefer));
    }
}
