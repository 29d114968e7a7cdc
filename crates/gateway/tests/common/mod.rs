//! Test helpers: the real application on port 0 (SQLite in a fresh folder, the built-in emulator on
//! the other side), an HTTP client with a valid token, and helpers per endpoint.

#![allow(dead_code)]

pub mod process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twilio_emulator::{Emulator, EmulatorConfig, LifecycleDelays};
use whatsapp_gateway::config::Config;
use whatsapp_gateway::startup::{Application, RunOptions};

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";

pub struct TestApp {
    pub backend: Backend,
    pub base_url: String,
    pub http: reqwest::Client,
    pub token: String,
    pub emulator: Emulator,
    pub gateway: whatsapp_gateway::service::Gateway,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    dir: PathBuf,
    pg_database: Option<String>,
    database_url: String,
}

/// Which backends the suite runs against: `WG_TEST_BACKEND=postgres` selects PostgreSQL + Redis
/// (the local servers), anything else SQLite + the embedded queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Production,
}

impl Backend {
    pub fn from_env() -> Self {
        match std::env::var("WG_TEST_BACKEND").as_deref() {
            Ok("postgres") => Self::Production,
            _ => Self::Embedded,
        }
    }
}

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A fresh PostgreSQL database for one test.
pub async fn create_pg_database() -> String {
    use sqlx::Connection as _;
    let name = format!("wg_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.expect("PostgreSQL runs on 127.0.0.1:5432");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    name
}

/// Drops a test database (from a plain thread: `Drop` cannot await).
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

/// Settings a test may change.
pub struct TestOptions {
    pub vars: Vec<(&'static str, String)>,
    pub emulator: EmulatorConfig,
}

impl Default for TestOptions {
    fn default() -> Self {
        let emulator = EmulatorConfig {
            delays: LifecycleDelays {
                to_sent: Duration::from_millis(10),
                to_delivered: Duration::from_millis(20),
                to_read: Duration::from_millis(30),
            },
            ..EmulatorConfig::default()
        };
        Self { vars: Vec::new(), emulator }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn spawn_with(options: TestOptions) -> Self {
        let backend = Backend::from_env();
        let dir = std::env::temp_dir().join(format!("wg-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg_database = match backend {
            Backend::Production => Some(create_pg_database().await),
            Backend::Embedded => None,
        };
        let database_url = match &pg_database {
            Some(name) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
            None => format!("sqlite://{}/gateway.db", dir.display()),
        };
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", database_url.clone()),
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("JWT_SECRET", JWT_SECRET.to_owned()),
            ("RETRY_BASE_MS", "50".to_owned()),
            ("RETRY_MAX_MS", "400".to_owned()),
            ("WORKER_POLL_MS", "20".to_owned()),
            ("SWEEPER_INTERVAL_MS", "200".to_owned()),
            ("TWILIO_TIMEOUT_MS", "3000".to_owned()),
            ("WORKER_LEASE_MS", "4000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if backend == Backend::Production {
            vars.insert("REDIS_URL".into(), REDIS_URL.into());
            vars.insert("REDIS_KEY_PREFIX".into(), format!("wg-test-{}", uuid::Uuid::new_v4().simple()));
        }
        for (k, v) in options.vars {
            vars.insert(k.to_owned(), v);
        }
        let config = Config::from_vars(&vars).expect("test configuration is valid");
        let app =
            Application::build(config, RunOptions { api: true, workers: true, emulator: Some(options.emulator), ..Default::default() })
                .await
                .expect("the application builds");
        let base_url = app.base_url().to_owned();
        let emulator = app.emulator().expect("no Twilio credentials: the emulator runs").clone();
        let gateway = app.gateway().clone();
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped(false));
        let token = whatsapp_gateway::http::mint_token(&JWT_SECRET.to_owned().into(), "test-suite", 3600).unwrap();
        let cert = reqwest::Certificate::from_pem(&std::fs::read(fixture("tls-ca.pem")).unwrap()).unwrap();
        let http = reqwest::Client::builder().add_root_certificate(cert).build().unwrap();
        Self { backend, base_url, http, token, emulator, gateway, shutdown, handle: Some(handle), dir, pg_database, database_url }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn send(&self, body: Value) -> reqwest::Response {
        self.http.post(self.url("/api/v1/whatsapp/send")).bearer_auth(&self.token).json(&body).send().await.unwrap()
    }

    /// Sends and returns the new message's id, asserting 202.
    pub async fn send_ok(&self, body: Value) -> String {
        let response = self.send(body).await;
        assert_eq!(response.status(), 202, "send was refused: {}", response.text().await.unwrap());
        response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(&self.token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn delivery_status(&self, id: &str) -> Value {
        let (status, body) = self.get_json(&format!("/api/v1/whatsapp/delivery-status?id={id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls until the message's status satisfies `done` (10 s at most) and returns it.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&str) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.delivery_status(id).await;
            if done(status["status"].as_str().unwrap_or_default()) {
                return status;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out; last state: {status:#}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_for_status(&self, id: &str, wanted: &str) -> Value {
        self.wait_for(id, |s| s == wanted).await
    }

    /// Waits until nothing changes for a moment (no callback in flight), bounded.
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    pub async fn metrics(&self, query: &str) -> Value {
        let (status, body) = self.get_json(&format!("/api/v1/whatsapp/delivery-metrics{query}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Stops the application gracefully (as on SIGTERM) and waits until it has finished; its
    /// database stays, for [`reopen_store`](Self::reopen_store).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("the server task does not panic").expect("the server stops cleanly");
        }
    }

    /// A new connection to this app's database (its own pool closes when it stops).
    pub async fn reopen_store(&self) -> whatsapp_gateway::store::Store {
        whatsapp_gateway::store::Store::connect(&self.database_url).await.expect("the database is still there")
    }

    pub fn open_window(&self, phone: &str) {
        self.emulator.open_window(phone);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_database.take() {
            drop_pg_database(name);
        }
    }
}

/// Statuses of the history entries that changed the message, in order.
pub fn applied_history(status: &Value) -> Vec<String> {
    status["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["applied"].as_bool() == Some(true))
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

/// A free-form outbound message to `to`, as the API would build it.
pub fn outbound(to: &str) -> whatsapp_gateway::domain::NewOutboundMessage {
    use whatsapp_gateway::domain::{Content, MessageId, NewOutboundMessage, PhoneNumber, Priority};
    NewOutboundMessage {
        id: MessageId::new(),
        to: PhoneNumber::parse(to).unwrap(),
        content: Content::FreeForm { body: Some("x".into()), media_urls: vec![] },
        priority: Priority::DEFAULT,
        send_at: None,
        reference: None,
        metadata: None,
        idempotency_key: None,
    }
}

/// The sandbox sender the tests send from.
pub fn sender() -> whatsapp_gateway::domain::PhoneNumber {
    whatsapp_gateway::domain::PhoneNumber::parse("+14155238886").unwrap()
}

/// Stores a message to `to` held back an hour (so no worker takes it), claims it for `worker`
/// and records attempt 1 as leaving, as a worker does just before calling Twilio.
pub async fn in_flight(store: &whatsapp_gateway::store::Store, to: &str, worker: &str) -> (whatsapp_gateway::domain::MessageId, i64) {
    use whatsapp_gateway::store::now_ms;
    let now = now_ms();
    let message = whatsapp_gateway::domain::NewOutboundMessage { send_at: Some(now + 3_600_000), ..outbound(to) };
    store.insert_outbound(&message, &sender(), now).await.unwrap();
    store.claim_message(message.id, worker, now + 3_600_001, now + 3_700_000).await.unwrap().expect("claimed");
    let attempt = store.begin_attempt(message.id, worker, now, now + 3_700_000).await.unwrap().expect("lease held");
    (message.id, attempt)
}

/// Path of a file in `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn text_message(to: &str) -> Value {
    json!({ "to": to, "body": "Your order is on its way" })
}
