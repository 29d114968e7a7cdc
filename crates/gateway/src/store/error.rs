//! The store's error type. Infrastructure failures are sorted once, here: what means "the
//! database cannot be reached or has no connection free in time" is [`StoreError::Unavailable`]
//! (the API answers 503 and Twilio retries), a taken unique key is a [`StoreError::Conflict`],
//! and everything else keeps its cause for the log.

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, is restarting, or has no connection free in time.
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A unique key is taken (the constraint is named).
    #[error("unique key {constraint} is already taken")]
    Conflict {
        /// The constraint (or index) that refused the row.
        constraint: String,
        /// The database's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database answered with another error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The embedded SQLite writer answered with an error.
    #[error("SQLite error")]
    Sqlite(#[source] rusqlite::Error),
    /// A migration failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row held a value the code cannot read (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A new message its recipient's row says cannot be sent as asked: nothing was stored.
    #[error(transparent)]
    Refused(super::refusal::Refusal),
    /// The writer has stopped: the store is shutting down.
    #[error("the store is shutting down")]
    Closed,
    /// The batch carrying this write failed as a whole (the database was unreachable).
    #[error(transparent)]
    Batch(std::sync::Arc<StoreError>),
}

impl StoreError {
    /// Whether retrying later may succeed without any change (the database was unreachable).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Closed => true,
            Self::Batch(inner) => inner.is_unavailable(),
            _ => false,
        }
    }

    /// Whether the whole batch may succeed if run again as it is (a deadlock or serialization
    /// failure between two writers).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => matches!(e.code().as_deref(), Some("40P01" | "40001")),
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            _ => false,
        }
    }
}

/// SQLSTATE classes and codes that mean the server is going away or not there yet.
fn unavailable_code(code: &str) -> bool {
    // 55P03: a lock not granted within `lock_timeout` (someone else holds the table).
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55P03")
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable(Box::new(e))
            }
            sqlx::Error::Database(ref db) if db.code().as_deref().is_some_and(unavailable_code) => Self::Unavailable(Box::new(e)),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                let constraint = db.constraint().unwrap_or("unique").to_owned();
                Self::Conflict { constraint, source: Box::new(e) }
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Self::Corrupt(e.to_string()),
            other => Self::Database(other),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                let constraint = e.to_string();
                Self::Conflict { constraint, source: Box::new(e) }
            }
            rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::DiskFull) => {
                Self::Unavailable(Box::new(e))
            }
            rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => Self::Corrupt(e.to_string()),
            _ => Self::Sqlite(e),
        }
    }
}
