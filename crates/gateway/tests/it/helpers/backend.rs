//! Which backends the suite runs against: `WG_TEST_BACKEND=postgres` selects PostgreSQL + Redis
//! (the local servers, a fresh database and key prefix per test), anything else SQLite + the
//! in-process queue.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Production,
}

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

impl Backend {
    pub fn from_env() -> Self {
        match std::env::var("WG_TEST_BACKEND").as_deref() {
            Ok("postgres") => Self::Production,
            _ => Self::Embedded,
        }
    }

    /// `REDIS_URL` and a fresh `REDIS_KEY_PREFIX` on the production backend.
    pub fn redis_vars(self) -> Vec<(String, String)> {
        match self {
            Self::Embedded => Vec::new(),
            Self::Production => vec![
                ("REDIS_URL".into(), REDIS_URL.into()),
                ("REDIS_KEY_PREFIX".into(), format!("wg-test-{}", uuid::Uuid::new_v4().simple())),
            ],
        }
    }
}

/// One test's database.
pub enum Database {
    Sqlite(String),
    Postgres(Option<String>),
}

impl Database {
    pub async fn create(backend: Backend, dir: &Path) -> Self {
        match backend {
            Backend::Embedded => Self::Sqlite(format!("sqlite://{}/gateway.db", dir.display())),
            Backend::Production => Self::Postgres(Some(create_pg_database().await)),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(url) => url.clone(),
            Self::Postgres(name) => format!("postgres://postgres@127.0.0.1:5432/{}", name.as_deref().unwrap_or_default()),
        }
    }

    /// Drops a PostgreSQL database (from a plain thread: `Drop` cannot await).
    pub fn drop_now(&mut self) {
        if let Self::Postgres(name) = self
            && let Some(name) = name.take()
        {
            drop_pg_database(name);
        }
    }
}

/// A fresh PostgreSQL database.
pub async fn create_pg_database() -> String {
    use sqlx::Connection as _;
    let name = format!("wg_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.expect("PostgreSQL runs on 127.0.0.1:5432");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    name
}

/// Drops a database, whoever is connected.
pub fn drop_pg_database(name: String) {
    let _ = std::thread::spawn(move || {
        use sqlx::Connection as _;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                let _ =
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await;
            }
        });
    })
    .join();
}
