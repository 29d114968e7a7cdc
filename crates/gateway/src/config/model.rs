//! The configuration's shape: one typed struct with a field (and a `///` naming its variable) for
//! every setting. Loading and checking it is [`super::load`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use std::collections::BTreeMap;

use crate::domain::Senders;

/// Where a message goes out through Twilio: credentials and sender.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// Account SID (`AC…`).
    pub account_sid: String,
    /// Auth token; signs webhooks and authenticates API calls.
    pub auth_token: SecretString,
    /// A second token accepted on webhooks while the primary is being rotated.
    pub secondary_auth_token: Option<SecretString>,
    /// Base URL of the Messages API (Twilio, or an emulator).
    pub api_base_url: String,
    /// Timeout of one call to Twilio.
    pub request_timeout: Duration,
}

/// How the worker pool sends.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Number of concurrent senders in this process (`WORKER_CONCURRENCY`).
    pub concurrency: usize,
    /// Attempts before a message is dead-lettered (`MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// First retry delay; doubled each attempt, the upper half of each step random ("equal
    /// jitter", see `worker::backoff_delay`) (`RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// Longest retry delay (`RETRY_MAX_MS`).
    pub retry_max: Duration,
    /// How long a claimed message is reserved for its worker (`WORKER_LEASE_MS`); must exceed the
    /// Twilio request timeout.
    pub lease: Duration,
    /// Messages per second per sender number (`SENDER_RATE_PER_SEC`; WhatsApp's default is 80).
    pub sender_rate_per_sec: u32,
    /// Per-sender rates that differ from it (`SENDER_RATES`: `+14155238886=40,MG…=200`).
    pub sender_rates: BTreeMap<String, u32>,
    /// How often an idle worker looks for work it was not told about (`WORKER_POLL_MS`).
    pub poll_interval: Duration,
    /// How often the sweeper re-queues due messages missing from the queue (`SWEEPER_INTERVAL_MS`).
    pub sweep_interval: Duration,
    /// Free-form content only to contacts who wrote in the last 24 hours, checked when a message
    /// is accepted and again when it becomes due (`WHATSAPP_WINDOW_CHECK`, default true).
    pub window_check: bool,
}

/// Asking Twilio about messages whose status callbacks stopped coming.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// Ask about a message Twilio has once it has had no news for this long (`POLL_AFTER_MS`,
    /// default 10 minutes); then again each time it has been silent as long again.
    pub after: Duration,
    /// The longest wait between two polls of one message (`POLL_MAX_INTERVAL_MS`, default a day).
    pub max_interval: Duration,
    /// A message with no news for longer than this is no longer asked about (`POLL_MAX_AGE_MS`,
    /// default 3 days).
    pub max_age: Duration,
    /// Polls per second, all instances together (`POLL_RATE_PER_SEC`, default 5; 0 turns the
    /// poller off).
    pub rate_per_sec: u32,
}

/// What to do with incoming messages.
#[derive(Debug, Clone, Default)]
pub struct InboundConfig {
    /// Text answered to every incoming message that is not a STOP/START keyword (`AUTO_REPLY_TEXT`).
    pub auto_reply: Option<String>,
    /// URL that receives each incoming message as a signed `message.received` event: shorthand
    /// for an endpoint subscribed to that event only (`INBOUND_FORWARD_URL`; signed with
    /// `EVENTS_SECRET` when set, else a secret of its own).
    pub forward_url: Option<String>,
}

/// Event webhooks to the application (issue 11).
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// One endpoint subscribed to every event (`EVENTS_URL`).
    pub url: Option<String>,
    /// Its signing secret, `whsec_…` (`EVENTS_SECRET`, or `EVENTS_SECRET_FILE`); generated and
    /// kept in the database when unset (`GET /api/v1/events/endpoints/config-events/secret` shows it).
    pub secret: Option<SecretString>,
    /// Attempts to post one event run at once, per instance (`EVENTS_CONCURRENCY`, default 64).
    pub concurrency: usize,
    /// Timeout of one attempt (`EVENTS_TIMEOUT_MS`, default 10000).
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles, with jitter (`EVENTS_RETRY_BASE_MS`,
    /// default 5000).
    pub retry_base: Duration,
    /// The longest delay between two attempts (`EVENTS_RETRY_MAX_MS`, default an hour).
    pub retry_max: Duration,
    /// An event not delivered this long after it was stored is marked failed
    /// (`EVENTS_MAX_AGE_MS`, default 24 hours); an operator can redrive it.
    pub max_age: Duration,
    /// An endpoint whose every attempt failed for this long is disabled, until enabled by hand
    /// (`EVENTS_DISABLE_AFTER_MS`, default 5 days).
    pub disable_after: Duration,
    /// How long the webhook that stored an incoming message has to run the inbound handlers
    /// before the dispatcher runs them instead and sends their answer as a message
    /// (`EVENTS_HANDLER_GRACE_MS`, default 30000).
    pub handler_grace: Duration,
    /// Let endpoints added over the API post to internal addresses (loopback, private,
    /// link-local) (`EVENTS_ALLOW_PRIVATE_URLS`, default false; configured endpoints always may).
    pub allow_private_urls: bool,
    /// Each application endpoint's previous secret keeps signing this long after a rotation
    /// unless the rotation says otherwise (`EVENTS_ROTATION_GRACE_MS`, default 24 hours).
    pub rotation_grace: Duration,
}

/// Request rate limits: sliding one-minute windows, with an optional bound per second.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Webhook requests per minute per client IP (`RATE_LIMIT_WEBHOOK_PER_MIN`, default 200).
    pub webhook_per_min: u32,
    /// API requests per minute per token subject (`RATE_LIMIT_API_PER_MIN`, default 1000).
    pub api_per_min: u32,
    /// Messages per minute per token subject through `POST /send` and `POST /send/batch` (each
    /// item of a batch counts) (`RATE_LIMIT_SEND_PER_MIN`, default the API limit).
    pub send_per_min: u32,
    /// The most requests (or batch items) of one bucket in any one second (`RATE_LIMIT_BURST`;
    /// default 0: no bound beyond the minute's allowance, which a client may spend at once).
    pub burst: u32,
}

/// The database connections and the write batches.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Connections in the read pool (`DATABASE_MAX_CONNECTIONS`, default 8).
    pub max_connections: u32,
    /// How long a request waits for a free connection before the database counts as unavailable
    /// and the API answers 503 (`DATABASE_ACQUIRE_TIMEOUT_MS`, default 5000).
    pub acquire_timeout: Duration,
    /// The most commands one write batch (one transaction) carries (`WRITER_MAX_BATCH`, default 512).
    pub max_batch: usize,
    /// Write batches run at once on PostgreSQL, each on a connection of its own
    /// (`WRITER_CONNECTIONS`, default 3), plus one connection whose batches carry only new
    /// messages (so that an API request never waits behind claims and callbacks); SQLite always
    /// has one writer.
    pub writers: usize,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`; default `sqlite://data/gateway.db`).
    pub database_url: SecretString,
    /// Connections and write batches.
    pub database: DatabaseConfig,
    /// Address the HTTP server binds (`BIND_ADDR`; default `127.0.0.1:8080`).
    pub bind_addr: SocketAddr,
    /// The URL Twilio calls us at (`PUBLIC_BASE_URL`); defaults to `http://` + the bound address.
    pub public_base_url: Option<String>,
    /// Twilio; `None` when no credentials are set, in which case the built-in emulator is used.
    pub twilio: Option<TwilioConfig>,
    /// What messages go out from: the WhatsApp numbers (`TWILIO_WHATSAPP_FROM`, a comma-separated
    /// list; with the emulator, default the sandbox number) and the Messaging Service
    /// (`TWILIO_MESSAGING_SERVICE_SID`, `MG…`), the default route when set.
    pub senders: Senders,
    /// Timeout of one call to Twilio (`TWILIO_TIMEOUT_MS`).
    pub twilio_timeout: Duration,
    /// HS256 secret for API bearer tokens (`JWT_SECRET`); a development secret kept in
    /// `data/jwt-secret` is used when unset.
    pub jwt_secret: SecretString,
    /// Whether the JWT secret was generated for development.
    pub jwt_secret_generated: bool,
    /// PEM public key (RSA → RS256, EC P-256 → ES256) from `JWT_PUBLIC_KEY_FILE`; when set, only
    /// tokens signed with its private key are accepted.
    pub jwt_public_key_pem: Option<String>,
    /// Required `aud` claim (`JWT_AUDIENCE`).
    pub jwt_audience: Option<String>,
    /// Required `iss` claim (`JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// `REDIS_URL` (`redis://` or `rediss://`): the queue, replay, idempotency and rate-limit
    /// state move to Redis, shared by every instance.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key (`REDIS_KEY_PREFIX`), so deployments can share a Redis.
    pub redis_prefix: String,
    /// `REDIS_CLUSTER` (default false): REDIS_URL is one node of a Redis Cluster; the other nodes
    /// are discovered from it.
    pub redis_cluster: bool,
    /// HTTPS: certificate and key PEM files (`TLS_CERT_FILE`, `TLS_KEY_FILE`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse plain-HTTP requests and send HSTS (`REQUIRE_HTTPS`); behind a TLS-terminating
    /// proxy this needs `TRUST_PROXY` so that `X-Forwarded-Proto` is believed.
    pub require_https: bool,
    /// Believe `X-Forwarded-For/-Proto/-Host` from the peer (`TRUST_PROXY`): set only when a
    /// proxy you run is the only way in.
    pub trust_proxy: bool,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Worker pool settings.
    pub worker: WorkerConfig,
    /// The poller of missed callbacks.
    pub poll: PollConfig,
    /// Incoming message handling.
    pub inbound: InboundConfig,
    /// Event webhooks.
    pub events: EventsConfig,
    /// `json` for JSON logs, anything else for human-readable ones (`LOG_FORMAT`).
    pub log_json: bool,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}
