//! Test harness: the emulator on 127.0.0.1:0, and a webhook receiver (also on port 0) that
//! checks every request's `X-Twilio-Signature` with `twilio_signature::validate` and records it.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use twilio_emulator::{Emulator, EmulatorConfig, LifecycleDelays};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(5);

pub const FROM: &str = "whatsapp:+14155238886";
pub const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";

/// A config with lifecycle steps 5 ms apart and quick callback retries.
pub fn fast_config() -> EmulatorConfig {
    EmulatorConfig {
        delays: LifecycleDelays::uniform(Duration::from_millis(5)),
        callback_retry_backoff: Duration::from_millis(10),
        ..EmulatorConfig::default()
    }
}

/// A served emulator; stops when dropped.
pub struct TestEmulator {
    pub emu: Emulator,
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for TestEmulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(config: EmulatorConfig) -> TestEmulator {
    start_router(config, |router| router).await
}

/// Starts the emulator with its router wrapped by `wrap` (e.g. nested under a prefix).
pub async fn start_router(config: EmulatorConfig, wrap: impl FnOnce(Router) -> Router) -> TestEmulator {
    let emu = Emulator::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let app = wrap(emu.router());
    let stop = shutdown.clone();
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    TestEmulator { emu, base: format!("http://{addr}"), http, shutdown }
}

impl TestEmulator {
    pub fn messages_path(&self) -> String {
        format!("/2010-04-01/Accounts/{}/Messages.json", self.emu.account_sid())
    }

    /// POSTs a create with the right credentials.
    pub async fn create(&self, params: &[(&str, &str)]) -> (u16, Value) {
        self.create_with(params, self.emu.account_sid(), self.emu.auth_token()).await
    }

    pub async fn create_with(&self, params: &[(&str, &str)], user: &str, password: &str) -> (u16, Value) {
        let url = format!("{}{}", self.base, self.messages_path());
        let response = self.http.post(url).basic_auth(user, Some(password)).form(params).send().await.unwrap();
        json_of(response).await
    }

    /// A WhatsApp free-form create to `to` with `StatusCallback` = `callback` (if any).
    pub async fn send_text(&self, to: &str, callback: Option<&str>) -> (u16, Value) {
        let mut params = vec![("To", to), ("From", FROM), ("Body", "hello")];
        if let Some(url) = callback {
            params.push(("StatusCallback", url));
        }
        self.create(&params).await
    }

    /// GETs `path_and_query` (relative to the emulator root) with the right credentials.
    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let url = format!("{}{}", self.base, path_and_query);
        let response = self.http.get(url).basic_auth(self.emu.account_sid(), Some(self.emu.auth_token())).send().await.unwrap();
        json_of(response).await
    }

    pub async fn fetch(&self, sid: &str) -> (u16, Value) {
        self.get(&format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", self.emu.account_sid())).await
    }
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub signature_valid: bool,
    /// What the receiver answered.
    pub answered: u16,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn status(&self) -> &str {
        self.param("MessageStatus").unwrap_or("")
    }
}

struct ReceiverState {
    base: String,
    token: String,
    calls: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
}

/// A webhook receiver on 127.0.0.1:0.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<ReceiverState>,
}

pub const TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response />"#;

async fn receive(State(state): State<Arc<ReceiverState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let url = format!("{}{}", state.base, uri.path_and_query().map_or("", |p| p.as_str()));
    let signature = headers.get("X-Twilio-Signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let valid = twilio_signature::validate(state.token.as_bytes(), &url, twilio_signature::Payload::Form(&params), signature);
    let answered = state.script.lock().unwrap().pop_front().unwrap_or(200);
    let path = uri.path().to_owned();
    state.calls.lock().unwrap().push(Received { path, params, headers, signature_valid: valid, answered });
    (StatusCode::from_u16(answered).unwrap(), TWIML.to_owned())
}

impl Receiver {
    pub async fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState {
            base: format!("http://{addr}"),
            token: token.to_owned(),
            calls: Mutex::default(),
            script: Mutex::default(),
        });
        let app = Router::new().route("/{*path}", post(receive)).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { state }
    }

    /// The absolute URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.state.base)
    }

    /// The next requests are answered with these statuses (then 200).
    pub fn answer_next(&self, statuses: &[u16]) {
        self.state.script.lock().unwrap().extend(statuses);
    }

    pub fn calls(&self) -> Vec<Received> {
        self.state.calls.lock().unwrap().clone()
    }

    /// The requests about message `sid`, in arrival order.
    pub fn for_sid(&self, sid: &str) -> Vec<Received> {
        self.calls().into_iter().filter(|c| c.param("MessageSid") == Some(sid)).collect()
    }

    /// Waits until message `sid` has at least `n` requests; panics after [`WAIT`].
    pub async fn wait_for_sid(&self, sid: &str, n: usize) -> Vec<Received> {
        let got = eventually(|| async { Some(self.for_sid(sid)).filter(|calls| calls.len() >= n) }).await;
        got.unwrap_or_else(|| panic!("expected {n} callbacks for {sid}, got {:?}", statuses(&self.for_sid(sid))))
    }
}

/// The `MessageStatus` of each callback.
pub fn statuses(calls: &[Received]) -> Vec<String> {
    calls.iter().map(|c| c.status().to_owned()).collect()
}

/// Polls `check` every 5 ms until it returns `Some`, for at most [`WAIT`].
pub async fn eventually<T, F, Fut>(check: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Long enough for any further (unexpected) callback of a fast-config message to arrive.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

pub fn sid_of(body: &Value) -> String {
    body["sid"].as_str().unwrap_or_else(|| panic!("no sid in {body}")).to_owned()
}

/// `prefix` + 32 lowercase hex digits.
pub fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34 && value.starts_with(prefix) && value[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
