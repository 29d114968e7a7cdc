//! The dispatcher: delivers the outbox's events to the application's endpoints, signed the
//! Standard Webhooks way, with exponential backoff and jitter (honouring `Retry-After`) for up to
//! `EVENTS_MAX_AGE_MS`; runs the inbound handlers the webhook could not run; disables an
//! endpoint that keeps failing. Each instance runs one; deliveries are taken with a lease, so
//! instances share the work and a dead one's deliveries come due again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use secrecy::ExposeSecret as _;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::gateway::Gateway;
use crate::config::EventsConfig;
use crate::domain::clock::duration_ms as millis;
use crate::domain::{UnixMillis, now_ms};
use crate::security::WebhookSecret;
use crate::security::standard_webhooks::signature_header;
use crate::store::Store;
use crate::store::events::{DeliveryResult, DueDelivery, EndpointRecord, NextStep, ORIGIN_API, ORIGIN_INTERNAL};
use crate::telemetry::metrics;

/// How often the routes are reloaded (endpoints changed by another instance) and due
/// deliveries are looked for without a bell.
const REFRESH: Duration = Duration::from_secs(2);
/// How long the endpoints (URL, secrets) loaded for a round are used for the next ones (a change
/// made through this process applies at once; one made through another instance within this).
const ENDPOINTS_FRESH: Duration = Duration::from_millis(500);
/// How long the dispatcher waits to take, and to record, more at once.
const LINGER: Duration = Duration::from_millis(5);
/// Results waiting to be recorded, at most.
const RECORD_QUEUE: usize = 1024;
/// The most of an answer's body kept with its attempt.
const EXCERPT_BYTES: usize = 1024;

/// Delivers events.
pub struct Dispatcher {
    gateway: Gateway,
    store: Store,
    config: EventsConfig,
    http: reqwest::Client,
    /// Failing endpoints, and until when this dispatcher leaves their deliveries alone.
    resting: std::sync::Mutex<HashMap<String, UnixMillis>>,
}

impl Dispatcher {
    /// A dispatcher for the gateway's store.
    pub fn new(gateway: Gateway, store: Store, config: EventsConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("whatsapp-gateway/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { gateway, store, config, http, resting: std::sync::Mutex::default() }
    }

    /// Runs until `shutdown`; attempts in flight then finish and are recorded.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.config.concurrency));
        // Bounded, so that results never pile up unrecorded (none outlives its lease waiting): an
        // attempt whose result finds the queue full holds its slot until there is room.
        let (results, mut recorded) = mpsc::channel::<DeliveryResult>(RECORD_QUEUE);
        // Rung after each round is recorded: a retry may be due before the next refresh.
        let retried = Arc::new(tokio::sync::Notify::new());
        let recorder = {
            let (this, retried) = (this.clone(), retried.clone());
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while recorded.recv_many(&mut batch, 256).await > 0 {
                    // Under load, gather the results of a few milliseconds into one transaction.
                    if batch.len() < 64 {
                        tokio::time::sleep(LINGER).await;
                        while batch.len() < 256 {
                            let room = 256 - batch.len();
                            if recorded.recv_many(&mut batch, room).now_or_never().is_none_or(|n| n == 0) {
                                break;
                            }
                        }
                    }
                    let round = std::mem::take(&mut batch);
                    this.rest_failing(&round);
                    let retries = round.iter().any(|r| matches!(r.next, NextStep::Retry(_)));
                    this.record(round).await;
                    if retries {
                        retried.notify_one();
                    }
                }
            })
        };
        let mut refreshed: Option<Instant> = None;
        let mut endpoints: Arc<HashMap<String, EndpointRecord>> = Arc::default();
        let mut endpoints_loaded: Option<Instant> = None;
        let mut endpoints_generation = u64::MAX;
        while !shutdown.is_cancelled() {
            if refreshed.is_none_or(|at| at.elapsed() >= REFRESH) {
                match this.store.refresh_event_routes().await {
                    Ok(_) => refreshed = Some(Instant::now()),
                    Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "cannot load the event endpoints"),
                }
            }
            // Claim in rounds of at least a quarter of the slots: a round costs the same few
            // statements whatever its size.
            let quarter = (this.config.concurrency / 4).max(1);
            let free = permits.available_permits();
            if free < quarter {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    permit = permits.acquire_many(quarter as u32) => drop(permit),
                }
                continue;
            }
            // Every endpoint resting: nothing to take until the first rest ends.
            let (resting, rest_end) = this.resting_now();
            let routes = this.store.outbox().routes();
            if !resting.is_empty() && routes.endpoints.iter().all(|(id, _)| resting.contains(id)) {
                let wait = rest_end.map_or(REFRESH, |at| {
                    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).clamp(5, millis(REFRESH) as u64))
                });
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let due = match this.claim(free).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "cannot take due events");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            let full = due.len() == free;
            // The endpoints as they are at most a moment ago (a rotated secret or a new URL applies
            // within ENDPOINTS_FRESH), and at once for an endpoint not seen yet.
            let unknown = due.iter().any(|d| !endpoints.contains_key(&d.endpoint_id));
            let changed = this.store.outbox().generation() != endpoints_generation;
            if !due.is_empty() && (unknown || changed || endpoints_loaded.is_none_or(|at| at.elapsed() >= ENDPOINTS_FRESH)) {
                let generation = this.store.outbox().generation();
                match this.store.all_endpoints().await {
                    Ok(all) => {
                        endpoints = Arc::new(all.into_iter().map(|e| (e.id.clone(), e)).collect());
                        endpoints_loaded = Some(Instant::now());
                        endpoints_generation = generation;
                    }
                    Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "cannot load the event endpoints"),
                }
            }
            let took = due.len();
            for delivery in due {
                let Ok(permit) = permits.clone().try_acquire_owned() else { break };
                let (this, endpoints, results) = (this.clone(), endpoints.clone(), results.clone());
                tokio::spawn(async move {
                    let result = this.attempt(delivery, &endpoints).await;
                    let _ = results.send(result).await;
                    drop(permit);
                });
            }
            if full {
                continue;
            }
            // Until the bell, the next retry, or the next refresh, whichever comes first (while
            // deliveries flow, the bell comes first: the next retry is looked up only when idle).
            let wait = if took > 0 {
                REFRESH
            } else {
                let (resting, rest_ends) = this.resting_now();
                let next: Option<UnixMillis> = this.store.next_delivery_at(&resting).await.unwrap_or_default();
                match next.into_iter().chain(rest_ends).min() {
                    Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).clamp(5, millis(REFRESH) as u64)),
                    None => REFRESH,
                }
            };
            let rung = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = this.store.outbox().rung() => true,
                _ = retried.notified() => false,
                _ = tokio::time::sleep(wait) => false,
            };
            if rung {
                // Events come in bursts (a batch commits several): take them a few ms later, together.
                tokio::time::sleep(LINGER).await;
            }
        }
        // Let the attempts in flight finish, then record them.
        let _ = permits.acquire_many(this.config.concurrency as u32).await;
        drop(results);
        let _ = recorder.await;
    }

    async fn claim(&self, limit: usize) -> Result<Vec<DueDelivery>, crate::store::StoreError> {
        let lease = self.config.timeout + Duration::from_secs(30);
        let now = now_ms();
        let (resting, _) = self.resting_now();
        self.store.claim_deliveries(now, limit as i64, millis(lease), millis(self.config.handler_grace), &resting).await
    }

    /// The endpoints resting now, and when the first rest ends.
    fn resting_now(&self) -> (Vec<String>, Option<UnixMillis>) {
        let now = now_ms();
        let mut resting = self.resting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        resting.retain(|_, until| *until > now);
        (resting.keys().cloned().collect(), resting.values().copied().min())
    }

    /// An endpoint that failed every attempt of a round rests until its soonest retry: this
    /// dispatcher takes none of its deliveries meanwhile, so that one dead endpoint does not take
    /// every slot, round after round, from the endpoints that answer.
    fn rest_failing(&self, round: &[DeliveryResult]) {
        let mut soonest: HashMap<&str, Option<UnixMillis>> = HashMap::new();
        for r in round {
            let entry = soonest.entry(r.endpoint_id.as_str()).or_insert(Some(UnixMillis::MAX));
            *entry = match (&r.next, *entry) {
                (NextStep::Retry(at), Some(so_far)) => Some(so_far.min(*at)),
                _ => None,
            };
        }
        let mut resting = self.resting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (endpoint, until) in soonest {
            match until {
                Some(until) if until < UnixMillis::MAX => {
                    resting.insert(endpoint.to_owned(), until);
                }
                _ => {
                    resting.remove(endpoint);
                }
            }
        }
    }

    async fn record(&self, batch: Vec<DeliveryResult>) {
        // The leases keep the deliveries until this is done; retry a while if the database is away.
        for wait in [0u64, 200, 1000, 5000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match self.store.record_deliveries(&batch, now_ms(), millis(self.config.disable_after)).await {
                Ok(disabled) => {
                    for id in disabled {
                        metrics::event_endpoint_disabled();
                        tracing::warn!(endpoint = %id, "event endpoint disabled: every delivery failed for EVENTS_DISABLE_AFTER_MS");
                    }
                    return;
                }
                Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "cannot record event deliveries; trying again"),
            }
        }
        tracing::error!(deliveries = batch.len(), "event deliveries not recorded: they are attempted again when their lease ends");
    }

    async fn attempt(&self, d: DueDelivery, endpoints: &HashMap<String, EndpointRecord>) -> DeliveryResult {
        let started = Instant::now();
        let attempted_at = now_ms();
        let mut result = DeliveryResult {
            event_id: d.event_id.clone(),
            endpoint_id: d.endpoint_id.clone(),
            attempt: d.attempts,
            attempted_at,
            status_code: None,
            latency_ms: 0,
            response: None,
            error: None,
            next: NextStep::Failed,
        };
        let mut retry_after = None;
        let outcome: Result<Option<String>, String> = match endpoints.get(&d.endpoint_id) {
            None => Err("the endpoint no longer exists".into()),
            Some(endpoint) if endpoint.origin == ORIGIN_INTERNAL => {
                // Within the lease, so that no other dispatcher takes them meanwhile.
                match tokio::time::timeout(self.config.timeout, self.gateway.run_stored_handlers(&d)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err("the handlers did not finish within EVENTS_TIMEOUT_MS".to_owned()),
                }
            }
            Some(endpoint) if endpoint.origin == ORIGIN_API && !self.config.allow_private_urls => {
                match public_destination(&endpoint.url).await {
                    Ok(()) => self.post_recorded(endpoint, &d, attempted_at, &mut result, &mut retry_after).await,
                    Err(refused) => Err(refused),
                }
            }
            Some(endpoint) => self.post_recorded(endpoint, &d, attempted_at, &mut result, &mut retry_after).await,
        };
        result.latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let label = match outcome {
            Ok(answer) => {
                result.next = NextStep::Delivered(answer);
                "delivered"
            }
            Err(error) => {
                if result.status_code.is_none() {
                    result.error = Some(error);
                }
                match self.next_attempt(d.attempts, d.created_at, attempted_at, retry_after) {
                    Some(at) => {
                        result.next = NextStep::Retry(at);
                        "retrying"
                    }
                    None => "failed",
                }
            }
        };
        metrics::event_attempt(label, started.elapsed());
        result
    }

    /// Posts one event, keeping the answer's status and excerpt in `result`.
    async fn post_recorded(
        &self,
        endpoint: &EndpointRecord,
        d: &DueDelivery,
        now: UnixMillis,
        result: &mut DeliveryResult,
        retry_after: &mut Option<Duration>,
    ) -> Result<Option<String>, String> {
        let (status, excerpt, after) = self.post(endpoint, d, now).await?;
        result.status_code = Some(i64::from(status));
        result.response = excerpt;
        *retry_after = after;
        if (200..300).contains(&status) { Ok(None) } else { Err(format!("answered {status}")) }
    }

    /// Posts one event: its status, the start of its body, and its `Retry-After`.
    async fn post(
        &self,
        endpoint: &EndpointRecord,
        d: &DueDelivery,
        now: UnixMillis,
    ) -> Result<(u16, Option<String>, Option<Duration>), String> {
        let secrets: Vec<WebhookSecret> = endpoint.signing_secrets(now).into_iter().filter_map(|s| WebhookSecret::parse(s).ok()).collect();
        if secrets.is_empty() {
            return Err("the endpoint has no usable secret".into());
        }
        let timestamp = now.div_euclid(1000);
        let signature = signature_header(&secrets, &d.event_id, timestamp, d.payload.as_bytes());
        let response = self
            .http
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let excerpt = excerpt(response).await;
        Ok((status, excerpt, retry_after))
    }

    /// When to try again after attempt `attempt` failed: doubling from `EVENTS_RETRY_BASE_MS`
    /// up to `EVENTS_RETRY_MAX_MS`, ±20% jitter, no sooner than the endpoint's `Retry-After`;
    /// `None` once that is past `EVENTS_MAX_AGE_MS` from when delivering began.
    fn next_attempt(&self, attempt: i64, began: UnixMillis, now: UnixMillis, retry_after: Option<Duration>) -> Option<UnixMillis> {
        let next = now + backoff(&self.config, attempt, retry_after, fastrand::f64());
        (next - began <= millis(self.config.max_age)).then_some(next)
    }
}

/// The wait after attempt `attempt` failed, in ms, `jitter` in [0, 1).
fn backoff(config: &EventsConfig, attempt: i64, retry_after: Option<Duration>, jitter: f64) -> i64 {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let doubled = millis(config.retry_base).saturating_mul(1i64 << exponent).min(millis(config.retry_max));
    let jittered = (doubled as f64 * (0.8 + 0.4 * jitter)) as i64;
    // The endpoint's own word, up to a day.
    let asked = retry_after.map_or(0, |d| millis(d).min(86_400_000));
    jittered.max(asked).max(1)
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time (EVENTS_TIMEOUT_MS)".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        // Without the URL, which may carry a token in its query.
        let mut text = crate::telemetry::chain(&e.without_url());
        text.truncate(200);
        text
    }
}

/// Refuses to post to an address inside the gateway's own network (loopback, private, link-local,
/// unspecified; `EVENTS_ALLOW_PRIVATE_URLS` allows it): an endpoint an API token adds must not
/// reach the services beside the gateway, whose answers the attempts would show. Checked on the
/// addresses the name resolves to, at each attempt.
async fn public_destination(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("unusable URL: {e}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    match addresses.iter().find(|a| crate::security::destination::is_internal(a.ip())) {
        Some(a) => Err(format!("{host} resolves to {}, an internal address: refused (EVENTS_ALLOW_PRIVATE_URLS=true allows it)", a.ip())),
        None => Ok(()),
    }
}

/// The start of an answer's body, as text.
async fn excerpt(mut response: reqwest::Response) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - kept.len())]),
            _ => break,
        }
    }
    (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned())
}

/// The secret configured for the `EVENTS_URL` endpoint, as text.
pub(crate) fn configured_secret(config: &EventsConfig) -> Option<String> {
    config.secret.as_ref().map(|s| s.expose_secret().trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EventsConfig {
        EventsConfig {
            url: None,
            secret: None,
            concurrency: 1,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            max_age: Duration::from_secs(86_400),
            disable_after: Duration::from_secs(5 * 86_400),
            rotation_grace: Duration::from_secs(86_400),
            handler_grace: Duration::from_secs(30),
            allow_private_urls: false,
        }
    }

    #[test]
    fn retries_double_with_jitter_up_to_the_cap_and_honour_retry_after() {
        let c = config();
        // No jitter at its middle (0.5 → ×1.0).
        let waits: Vec<i64> = (1..=12).map(|n| backoff(&c, n, None, 0.5)).collect();
        assert_eq!(&waits[..5], [5_000, 10_000, 20_000, 40_000, 80_000]);
        assert_eq!(waits[11], 3_600_000);
        // ±20%.
        assert_eq!(backoff(&c, 1, None, 0.0), 4_000);
        assert_eq!(backoff(&c, 1, None, 0.999_999), 5_999);
        // Retry-After wins when longer, up to a day.
        assert_eq!(backoff(&c, 1, Some(Duration::from_secs(120)), 0.5), 120_000);
        assert_eq!(backoff(&c, 1, Some(Duration::from_secs(1)), 0.5), 5_000);
        assert_eq!(backoff(&c, 1, Some(Duration::from_secs(10 * 86_400)), 0.5), 86_400_000);
    }
}
