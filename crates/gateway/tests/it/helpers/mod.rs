//! Test helpers: the real application on port 0 (SQLite in a fresh folder, or PostgreSQL + Redis
//! with a fresh database and key prefix), the Twilio emulator as a server of its own on the
//! other side, an HTTP client with a valid token, typed helpers per endpoint, a way to drain
//! the work in flight and a check that nothing is left unprocessed.

pub mod backend;
pub mod private_pg;
pub mod process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twilio_emulator::{Emulator, EmulatorConfig, LifecycleDelays};
use whatsapp_gateway::config::Config;
use whatsapp_gateway::domain::MessageStatus;
use whatsapp_gateway::http::dto::metrics::MetricsReport;
use whatsapp_gateway::http::dto::{DeliveryStatusView, MessagePage, MessageResource};
use whatsapp_gateway::http::problem::ProblemDetails;
use whatsapp_gateway::service::Gateway;
use whatsapp_gateway::startup::{Application, RunOptions};
use whatsapp_gateway::store::{Store, StoreOptions};

pub use backend::Backend;

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";
/// The sender the tests send from.
pub const SENDER: &str = "+14155238886";

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

pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub token: String,
    pub emulator: Emulator,
    pub gateway: Gateway,
    pub database_url: String,
    shutdown: CancellationToken,
    emulator_stop: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    dir: PathBuf,
    database: backend::Database,
    finished: bool,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn spawn_with(options: TestOptions) -> Self {
        let backend = Backend::from_env();
        let dir = std::env::temp_dir().join(format!("wg-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let database = backend::Database::create(backend, &dir).await;
        let database_url = database.url();
        let emulator_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator_url = format!("http://{}", emulator_listener.local_addr().unwrap());
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", database_url.clone()),
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("JWT_SECRET", JWT_SECRET.to_owned()),
            ("RETRY_BASE_MS", "50".to_owned()),
            ("RETRY_MAX_MS", "400".to_owned()),
            ("WORKER_POLL_MS", "200".to_owned()),
            ("SWEEPER_INTERVAL_MS", "200".to_owned()),
            ("TWILIO_TIMEOUT_MS", "3000".to_owned()),
            ("WORKER_LEASE_MS", "4000".to_owned()),
            ("TWILIO_ACCOUNT_SID", options.emulator.account_sid.clone()),
            ("TWILIO_AUTH_TOKEN", options.emulator.auth_token.clone()),
            ("TWILIO_WHATSAPP_FROM", SENDER.to_owned()),
            ("TWILIO_API_BASE_URL", emulator_url.clone()),
            // Tests poll the API while they wait; the rate-limit tests set their own limits.
            ("RATE_LIMIT_API_PER_MIN", "100000".to_owned()),
            // Tests open the emulator's window (`open_window`), not the gateway's (an inbound
            // message); the window tests turn the check on.
            ("WHATSAPP_WINDOW_CHECK", "false".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        vars.extend(backend.redis_vars());
        for (k, v) in options.vars {
            vars.insert(k.to_owned(), v);
        }
        let config = Config::from_vars(&vars).expect("test configuration is valid");
        let app = Application::build(config, RunOptions { api: true, workers: true, ..Default::default() })
            .await
            .expect("the application builds");
        let base_url = app.base_url().to_owned();
        let mut emulator_config = options.emulator;
        emulator_config.inbound_webhook_url.get_or_insert_with(|| format!("{base_url}/api/v1/whatsapp/webhook"));
        emulator_config.business_number = SENDER.to_owned();
        let emulator = Emulator::new(emulator_config);
        let emulator_stop = CancellationToken::new();
        tokio::spawn(emulator.clone().serve(emulator_listener, emulator_stop.clone()));
        let gateway = app.gateway().clone();
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped(false));
        let token = whatsapp_gateway::security::mint_token(&JWT_SECRET.to_owned().into(), "test-suite", 3600).unwrap();
        let cert = reqwest::Certificate::from_pem(&std::fs::read(fixture("tls-ca.pem")).unwrap()).unwrap();
        let http = reqwest::Client::builder().add_root_certificate(cert).build().unwrap();
        Self {
            base_url,
            http,
            token,
            emulator,
            gateway,
            database_url,
            shutdown,
            emulator_stop,
            handle: Some(handle),
            dir,
            database,
            finished: false,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn send(&self, body: Value) -> reqwest::Response {
        self.http.post(self.url("/api/v1/whatsapp/send")).bearer_auth(&self.token).json(&body).send().await.unwrap()
    }

    /// Sends and returns the new message, asserting 202.
    pub async fn send_ok(&self, body: Value) -> MessageResource {
        let response = self.send(body).await;
        assert_eq!(response.status(), 202, "send was refused: {}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// GET with the token; the status and the raw response.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(&self.token).send().await.unwrap()
    }

    /// GET with the token, asserting 200, read as `T`.
    pub async fn get_ok<T: DeserializeOwned>(&self, path: &str) -> T {
        let response = self.get(path).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    pub async fn delivery_status(&self, id: impl std::fmt::Display) -> DeliveryStatusView {
        self.get_ok(&format!("/api/v1/whatsapp/delivery-status?id={id}")).await
    }

    pub async fn messages(&self, query: &str) -> MessagePage {
        self.get_ok(&format!("/api/v1/whatsapp/messages{query}")).await
    }

    pub async fn metrics(&self, query: &str) -> MetricsReport {
        self.get_ok(&format!("/api/v1/whatsapp/delivery-metrics{query}")).await
    }

    /// Waits until the message's status satisfies `done` (10 s at most) and returns it.
    pub async fn wait_for(&self, id: impl std::fmt::Display, done: impl Fn(MessageStatus) -> bool) -> DeliveryStatusView {
        let id = id.to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.delivery_status(&id).await;
            if done(status.message.status) {
                return status;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out; last state: {status:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_status(&self, id: impl std::fmt::Display, wanted: MessageStatus) -> DeliveryStatusView {
        self.wait_for(id, |s| s == wanted).await
    }

    /// Runs until there is no work left: no message due or held by a worker, and the emulator
    /// has no status left to change or callback to send (15 s at most).
    pub async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut quiet = 0;
        loop {
            let backlog = self.gateway.backlog().await.expect("the database answers");
            let idle = backlog.due == 0 && backlog.leased == 0 && self.emulator.active_lifecycles() == 0;
            // Twice in a row: a callback just answered may still be committing.
            quiet = if idle { quiet + 1 } else { 0 };
            if quiet >= 2 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "work still in hand after 15 s: {backlog:?}, emulator {} active",
                self.emulator.active_lifecycles()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drains, checks that nothing was left unprocessed (no due or held message, no callback
    /// kept for an unknown SID), and stops the application. Every test ends with it.
    pub async fn finish(mut self) {
        self.drain().await;
        let backlog = self.gateway.backlog().await.unwrap();
        assert_eq!((backlog.due, backlog.leased), (0, 0), "unprocessed messages left: {backlog:?}");
        self.stop().await;
        self.finished = true;
    }

    /// Stops the application gracefully (as on SIGTERM) and waits until it has finished; its
    /// database stays, for [`reopen_store`](Self::reopen_store).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("the server task does not panic").expect("the server stops cleanly");
        }
    }

    /// A store of its own on this app's database.
    pub async fn reopen_store(&self) -> Store {
        Store::connect(&self.database_url, &StoreOptions::default()).await.expect("the database is still there")
    }

    /// Runs `sql` on the test's database, outside the gateway (to age a row, say).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::Connection as _;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.database_url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.database_url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.database_url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }

    pub fn open_window(&self, phone: &str) {
        self.emulator.open_window(phone);
    }

    /// Marks the test as done without the final checks (for tests that stop the app on purpose).
    pub fn finished_without_checks(mut self) {
        self.finished = true;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.emulator_stop.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        self.database.drop_now();
        if !self.finished && !std::thread::panicking() {
            panic!("a test must end with `app.finish().await` (the check that nothing is left unprocessed)");
        }
    }
}

/// Reads a problem-details answer, asserting its content type.
pub async fn problem(response: reqwest::Response) -> (u16, ProblemDetails) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(content_type, "application/problem+json", "{status}: {text}");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a problem detail ({e}): {text}")))
}

/// The fields of a validation problem, with their reasons.
pub fn field_errors(problem: &ProblemDetails) -> Vec<(String, String)> {
    problem.errors.iter().flatten().map(|e| (e.field.clone(), e.reason.clone())).collect()
}

/// Statuses of the history entries that changed the message, in order.
pub fn applied_history(status: &DeliveryStatusView) -> Vec<MessageStatus> {
    status.history.iter().filter(|e| e.applied).map(|e| e.status).collect()
}

/// Path of a file in `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn text_message(to: &str) -> Value {
    json!({ "to": to, "body": "Your order is on its way" })
}

/// Form pairs from string pairs.
pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A status callback's form, as Twilio posts it.
pub fn status_params(sid: &str, status: &str) -> Vec<(String, String)> {
    pairs(&[
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", "AC00000000000000000000000000000000"),
    ])
}

/// POSTs a form, with `X-Twilio-Signature` when given.
pub async fn post_form(app: &TestApp, path: &str, params: &[(String, String)], signature: Option<String>) -> reqwest::Response {
    let mut request = app.http.post(app.url(path)).form(params);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Twilio's signature of `params` posted to `path` (query included).
pub fn sign(app: &TestApp, path: &str, params: &[(String, String)]) -> String {
    twilio_signature::compute(app.emulator.auth_token().as_bytes(), &app.url(path), params)
}
