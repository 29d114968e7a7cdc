//! A Twilio Messages API emulator for WhatsApp.
//!
//! It answers `POST/GET …/Messages.json` and `GET/POST/DELETE …/Messages/{Sid}.json` like
//! Twilio's 2010 API (same JSON, same legacy error shape, HTTP Basic auth), moves each message
//! through `queued → sent → delivered → read` on timers, and POSTs signed status callbacks
//! (`X-Twilio-Signature`, `I-Twilio-Idempotency-Token`) to its `StatusCallback`. Faults are
//! injected per recipient ([`Behaviour`]) or account-wide ([`EmulatorConfig`]): asynchronous
//! failures, duplicated and reordered callbacks, 429s, 500s, latency, and WhatsApp's 24-hour
//! customer service window. Inbound WhatsApp messages are injected with
//! [`Emulator::inject_inbound`] or `POST /_emulator/inbound`.
//!
//! Every route lives at the root (`/2010-04-01/…`, `/_emulator/…`), so the router can be nested
//! under any prefix.
//!
//! # Control endpoints (no authentication)
//! - `GET /_emulator/counters` ([`Counters`] as JSON); `DELETE /_emulator/counters` resets them.
//! - `GET /_emulator/behaviours`; `DELETE /_emulator/behaviours` clears them all.
//! - `PUT /_emulator/behaviours/{recipient}` with a JSON [`Behaviour`] (`{recipient}` is E.164,
//!   URL-encoded `%2B…` or a literal `+`; `*` is the default for every other recipient).
//! - `POST /_emulator/inbound` with JSON or a form ([`InboundMessage`]: `From`, `To`, `Body`,
//!   `ProfileName`, `WaId`, `MediaUrl`, optional `webhook_url`) → `{"status", "body",
//!   "message_sid"}` (400 for bad input or no webhook URL, 502 when the webhook is unreachable).
//! - `POST /_emulator/windows/{recipient}` opens a 24-hour window; `DELETE` closes it.
//!
//! # Environment ([`EmulatorConfig::from_env`])
//! `EMULATOR_ACCOUNT_SID`, `EMULATOR_AUTH_TOKEN`, `EMULATOR_DELAY_SENT_MS`,
//! `EMULATOR_DELAY_DELIVERED_MS`, `EMULATOR_DELAY_READ_MS`, `EMULATOR_ENFORCE_WINDOW`,
//! `EMULATOR_READ_RECEIPTS`, `EMULATOR_SENDER_RATE`, `EMULATOR_MAX_CONCURRENT`,
//! `EMULATOR_ERROR_500_SHARE`, `EMULATOR_LATENCY_MS`, `EMULATOR_INBOUND_WEBHOOK_URL`,
//! `EMULATOR_CALLBACK_MAX_ATTEMPTS`, `EMULATOR_BUSINESS_NUMBER`. The bind address
//! (`EMULATOR_BIND_ADDR`) is the caller's business: [`run`] takes it as an argument.

#![forbid(unsafe_code)]

mod api;
mod auth;
mod behaviour;
mod config;
mod control;
mod counters;
mod create;
mod error;
mod inbound;
mod lifecycle;
mod limits;
mod list;
mod model;
mod store;
mod webhook;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use behaviour::{ANY_RECIPIENT, Behaviour, Failure, FailureStatus, RestError, WINDOW};
pub use config::{DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_BUSINESS_NUMBER, EmulatorConfig, LifecycleDelays};
pub use counters::Counters;
pub use create::{MAX_BODY_CHARS, MAX_MEDIA};
pub use error::TwilioError;
pub use inbound::{InboundDelivery, InboundMessage};
pub use model::{API_VERSION, Status, parse_e164, strip_channel};

use behaviour::{Behaviours, Windows, lock};
use counters::CounterSet;
use limits::Limits;
use store::Store;

/// State shared by the handlers and the background tasks.
pub(crate) struct Shared {
    config: EmulatorConfig,
    http: reqwest::Client,
    store: Mutex<Store>,
    behaviours: Behaviours,
    windows: Windows,
    limits: Limits,
    counters: CounterSet,
    /// Cancelled when [`Emulator::serve`] stops; ends pending lifecycles.
    tasks: CancellationToken,
    /// Lifecycles (and single callbacks) still running: statuses to change or callbacks to send.
    active: Arc<std::sync::atomic::AtomicUsize>,
    /// `XE…`: the WhatsApp sender's channel install SID, fixed per emulator.
    channel_install_sid: String,
    /// `MG…`: the default Messaging Service SID Twilio shows when none was used.
    default_service_sid: String,
}

/// A running emulator's handle. Cheap to clone; every clone shares the same state.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("account_sid", &self.account_sid()).finish_non_exhaustive()
    }
}

impl Emulator {
    /// An emulator with `config` and no messages, behaviours or open windows.
    pub fn new(config: EmulatorConfig) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let limits = Limits::new(config.max_concurrent_requests, config.sender_rate_per_sec, config.error_500_share);
        let shared = Shared {
            http,
            store: Mutex::default(),
            behaviours: Behaviours::default(),
            windows: Windows::default(),
            limits,
            counters: CounterSet::default(),
            tasks: CancellationToken::new(),
            active: Arc::default(),
            channel_install_sid: model::new_sid("XE"),
            default_service_sid: config.messaging_service_sid.clone().unwrap_or_else(|| model::new_sid("MG")),
            config,
        };
        Self { shared: Arc::new(shared) }
    }

    /// The emulator's routes (`/2010-04-01/…` and `/_emulator/…`), with state applied.
    pub fn router(&self) -> axum::Router {
        api::routes().merge(control::routes()).with_state(self.clone())
    }

    /// Serves [`router`](Self::router) on `listener` until `shutdown` is cancelled, then stops
    /// pending lifecycles.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        let tasks = self.shared.tasks.clone();
        let result = axum::serve(listener, self.router()).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        tasks.cancel();
        result
    }

    /// Sets the behaviour for messages to `recipient_e164` (`+1…`, `whatsapp:+1…`, or
    /// [`ANY_RECIPIENT`]), replacing any earlier one and restarting its throttle counts.
    pub fn set_behaviour(&self, recipient_e164: &str, b: Behaviour) {
        self.shared.behaviours.set(recipient_e164, b);
    }

    /// Removes every behaviour.
    pub fn clear_behaviours(&self) {
        self.shared.behaviours.clear();
    }

    /// The behaviours currently set, by recipient.
    pub fn behaviours(&self) -> std::collections::HashMap<String, Behaviour> {
        self.shared.behaviours.all()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// Injects an inbound WhatsApp message: opens the 24-hour window for `m.from`, then POSTs the
    /// signed webhook to `m.webhook_url` or the configured `inbound_webhook_url`, and returns what
    /// the webhook answered.
    pub async fn inject_inbound(&self, m: InboundMessage) -> anyhow::Result<InboundDelivery> {
        inbound::inject(&self.shared, m).await
    }

    /// Opens the 24-hour customer service window for `recipient_e164`, as an inbound message
    /// from that number would.
    pub fn open_window(&self, recipient_e164: &str) {
        self.shared.windows.open(recipient_e164);
    }

    /// Closes the window for `recipient_e164`.
    pub fn close_window(&self, recipient_e164: &str) {
        self.shared.windows.close(recipient_e164);
    }

    /// How many messages still have statuses to change or callbacks to send (0: nothing more
    /// will reach the gateway unless asked).
    pub fn active_lifecycles(&self) -> usize {
        self.shared.active.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current status of message `sid`, if it exists.
    pub fn message_status(&self, sid: &str) -> Option<Status> {
        lock(&self.shared.store).get(sid).map(|m| m.status)
    }

    /// The `StatusCallback` URL message `sid` was created with, if it exists (Twilio's resource
    /// does not show it; tests use it to tell which request a message came from).
    pub fn status_callback(&self, sid: &str) -> Option<String> {
        lock(&self.shared.store).get(sid).and_then(|m| m.status_callback.clone())
    }

    /// The `ValidityPeriod` message `sid` was created with, if it exists and had one.
    pub fn validity_period(&self, sid: &str) -> Option<u32> {
        lock(&self.shared.store).get(sid).and_then(|m| m.validity_period)
    }

    /// The account SID (HTTP Basic user name).
    pub fn account_sid(&self) -> &str {
        &self.shared.config.account_sid
    }

    /// The auth token (HTTP Basic password and webhook signing key).
    pub fn auth_token(&self) -> &str {
        &self.shared.config.auth_token
    }

    /// The configuration the emulator runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }
}

/// Binds `bind`, prints `twilio-emulator listening on http://ADDR account_sid=AC…` on stdout,
/// and serves until Ctrl-C or SIGTERM.
pub async fn run(config: EmulatorConfig, bind: SocketAddr) -> anyhow::Result<()> {
    config.validate().context("invalid emulator configuration")?;
    let listener = TcpListener::bind(bind).await.with_context(|| format!("cannot bind {bind}"))?;
    let addr = listener.local_addr().context("no local address")?;
    let emulator = Emulator::new(config);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "twilio-emulator listening on http://{addr} account_sid={}", emulator.account_sid())?;
        out.flush()?;
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    emulator.serve(listener, shutdown).await.context("emulator server failed")
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    shutdown.cancel();
}
