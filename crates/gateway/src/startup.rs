//! Building and running the application: store, queue, Twilio (or the built-in emulator),
//! workers, and the HTTP server, wired from one [`Config`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{self, paths};
use crate::queue::{JobQueue, RedisQueue, SqlQueue};
use crate::security::{JwtKeys, SignatureConfig, TransportPolicy};
use crate::service::{Dispatcher, Gateway, InboundHandler};
use crate::shared::{MemoryState, RedisConnection, RedisState, SharedState};
use crate::state::AppState;
use crate::store::{Store, StoreOptions};
use crate::twilio::TwilioClient;
use crate::worker::{self, Loops, Poller, Sender};

/// What this process runs.
#[derive(Default)]
pub struct RunOptions {
    /// Serve the API and webhooks (otherwise only `/healthz`, `/readyz` and `/metrics`).
    pub api: bool,
    /// Run the worker pool (and the sweeper).
    pub workers: bool,
    /// Extra handlers for incoming messages.
    pub inbound_handlers: Vec<Arc<dyn InboundHandler>>,
}

/// A built application, bound to its address and ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    base_url: String,
    router: axum::Router,
    gateway: Gateway,
    embedded_emulator: bool,
    shutdown: CancellationToken,
    workers: Option<JoinSet<()>>,
    ready: Arc<AtomicBool>,
    tls: Option<RustlsConfig>,
}

/// Where messages go: Twilio (or an emulator named by `TWILIO_API_BASE_URL`), or the built-in
/// emulator.
struct Twilio {
    client: TwilioClient,
    tokens: Vec<SecretString>,
    emulator: Option<axum::Router>,
}

fn twilio(config: &Config, public_base_url: &str, base_url: &str) -> anyhow::Result<Twilio> {
    if let Some(t) = &config.twilio {
        let client = TwilioClient::new(&t.api_base_url, &t.account_sid, t.auth_token.clone(), t.request_timeout)?;
        let tokens = std::iter::once(t.auth_token.clone()).chain(t.secondary_auth_token.clone()).collect();
        tracing::info!(api = %t.api_base_url, account_sid = %t.account_sid, "sending through Twilio");
        return Ok(Twilio { client, tokens, emulator: None });
    }
    embedded(config, public_base_url, base_url)
}

#[cfg(feature = "emulator")]
fn embedded(config: &Config, public_base_url: &str, base_url: &str) -> anyhow::Result<Twilio> {
    use crate::embedded_emulator::{EMULATOR_PREFIX, start};
    let emulator =
        start(format!("{public_base_url}{}", paths::INBOUND_WEBHOOK), &config.senders).context("invalid EMULATOR_* configuration")?;
    let api = format!("{base_url}{EMULATOR_PREFIX}");
    tracing::warn!(
        emulator = %api,
        "no Twilio credentials (TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN): messages go to the built-in Twilio emulator, not to WhatsApp"
    );
    let client = TwilioClient::new(&api, &emulator.account_sid, emulator.auth_token.clone(), config.twilio_timeout)?;
    Ok(Twilio { client, tokens: vec![emulator.auth_token], emulator: Some(emulator.router) })
}

#[cfg(not(feature = "emulator"))]
fn embedded(_config: &Config, _public_base_url: &str, _base_url: &str) -> anyhow::Result<Twilio> {
    anyhow::bail!("invalid configuration: TWILIO_ACCOUNT_SID: required (this build has no built-in Twilio emulator)")
}

impl Application {
    /// Connects, migrates, binds and wires everything; workers start at once when asked for.
    pub async fn build(config: Config, options: RunOptions) -> anyhow::Result<Self> {
        let store_options = StoreOptions {
            max_connections: config.database.max_connections,
            acquire_timeout: config.database.acquire_timeout,
            max_batch: config.database.max_batch,
            writers: config.database.writers,
            window_check: config.worker.window_check,
        };
        let store = Store::connect(config.database_url.expose_secret(), &store_options).await.context("cannot connect to DATABASE_URL")?;
        store.migrate().await.context("cannot migrate the database")?;
        store.warm().await;
        let listener = TcpListener::bind(config.bind_addr).await.with_context(|| format!("cannot bind BIND_ADDR {}", config.bind_addr))?;
        let local_addr = listener.local_addr()?;
        let tls = match &config.tls {
            Some((cert, key)) => {
                // Two rustls crypto providers are compiled in; pick one before any TLS is set up.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                Some(RustlsConfig::from_pem_file(cert, key).await.context("invalid configuration: TLS_CERT_FILE / TLS_KEY_FILE")?)
            }
            None => None,
        };
        let base_url = format!("{}://{local_addr}", if tls.is_some() { "https" } else { "http" });
        let public_base_url = config.public_base_url.clone().unwrap_or_else(|| base_url.clone());
        let twilio = twilio(&config, &public_base_url, &base_url)?;

        let (queue, shared): (Arc<dyn JobQueue>, Arc<dyn SharedState>) = match &config.redis_url {
            Some(url) => {
                let url = url.expose_secret();
                // One multiplexed connection (or cluster connection) serves the queue and the shared state.
                let conn = RedisConnection::connect(url, config.redis_cluster).await.context("cannot connect to REDIS_URL")?;
                let queue = RedisQueue::new(conn.clone(), &config.redis_prefix, store.clone(), url)
                    .context("invalid configuration: REDIS_KEY_PREFIX")?;
                let shared = RedisState::new(conn, &config.redis_prefix).context("invalid configuration: REDIS_KEY_PREFIX")?;
                tracing::info!(prefix = %config.redis_prefix, cluster = config.redis_cluster, "queue and shared state in Redis");
                (Arc::new(queue), Arc::new(shared))
            }
            None => (Arc::new(SqlQueue::new(store.clone())), Arc::new(MemoryState::new())),
        };
        let poller = (config.poll.rate_per_sec > 0)
            .then(|| Arc::new(Poller::new(store.clone(), twilio.client.clone(), shared.clone(), config.poll.clone())));
        let sender = Arc::new(Sender::new(
            store.clone(),
            queue,
            twilio.client,
            config.senders.clone(),
            format!("{public_base_url}{}", paths::STATUS_CALLBACK),
            config.worker.clone(),
            shared.clone(),
        ));
        let gateway = Gateway::new(store.clone(), sender.clone(), options.inbound_handlers, config.inbound.clone(), config.events.clone());
        if let Some(secret) = &config.events.secret {
            crate::security::WebhookSecret::parse(secret.expose_secret())
                .map_err(|e| anyhow::anyhow!("invalid configuration: EVENTS_SECRET: {e}"))?;
        }
        gateway.configure_endpoints(&config.events, &config.inbound).await.context("cannot set up the configured event endpoints")?;
        let ready = Arc::new(AtomicBool::new(true));
        let state = AppState {
            gateway: gateway.clone(),
            jwt: Arc::new(JwtKeys::from_config(&config)?),
            signatures: Arc::new(SignatureConfig {
                public_base_url: public_base_url.trim_end_matches('/').to_owned(),
                tokens: twilio.tokens,
            }),
            ready: ready.clone(),
            shared,
            rate_limits: config.rate_limits.clone(),
            transport: TransportPolicy { tls: tls.is_some(), require_https: config.require_https, trust_proxy: config.trust_proxy },
        };
        crate::telemetry::metrics::prometheus_handle();
        let mut router = if options.api { http::router(state) } else { http::ops_router(state) };
        let embedded_emulator = twilio.emulator.is_some();
        #[cfg(feature = "emulator")]
        if let Some(emulator) = twilio.emulator {
            router = router.nest(crate::embedded_emulator::EMULATOR_PREFIX, emulator);
        }
        let shutdown = CancellationToken::new();
        let loops = Loops { sweeper: config.redis_url.is_some(), poller };
        let dispatcher = Dispatcher::new(gateway.clone(), store.clone(), config.events.clone());
        let workers = options.workers.then(|| {
            let mut pool = worker::spawn_pool(sender, store, loops, shutdown.clone());
            pool.spawn(dispatcher.run(shutdown.clone()));
            pool
        });
        Ok(Self { listener, local_addr, base_url, router, gateway, embedded_emulator, shutdown, workers, ready, tls })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://` + the bound address.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The gateway's operations (for embedding).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Whether messages go to the built-in emulator (no Twilio credentials are set).
    pub fn uses_embedded_emulator(&self) -> bool {
        self.embedded_emulator
    }

    /// Cancelling this token stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled (or Ctrl-C / SIGTERM when `signals`), then
    /// lets in-flight sends finish.
    pub async fn run_until_stopped(self, signals: bool) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        if signals {
            let token = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutdown requested; finishing in-flight work");
                token.cancel();
            });
        }
        let ready = self.ready.clone();
        let graceful = {
            let token = shutdown.clone();
            async move {
                token.cancelled().await;
                ready.store(false, Ordering::Relaxed);
            }
        };
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        match self.tls {
            None => axum::serve(self.listener, service).with_graceful_shutdown(graceful).await.context("HTTP server failed")?,
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    graceful.await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(30)));
                });
                let listener = self.listener.into_std()?;
                axum_server::from_tcp_rustls(listener, tls)?.handle(handle).serve(service).await.context("HTTPS server failed")?;
            }
        }
        if let Some(mut workers) = self.workers {
            let drain = async { while workers.join_next().await.is_some() {} };
            if tokio::time::timeout(Duration::from_secs(30), drain).await.is_err() {
                tracing::warn!("workers did not finish within 30 s; their leases will expire and another worker will reconcile");
            }
        }
        self.gateway.close().await;
        Ok(())
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
