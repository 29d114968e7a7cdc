//! Every Prometheus series the gateway exports, in one place: its name, type, labels and help
//! text ([`SERIES`]), and one function per event that updates it. Nothing else in the crate names
//! a series, so this list is the whole of `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// A Prometheus series: name, type, labels, help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// Its name.
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// What it counts.
    pub help: &'static str,
}

const fn series(name: &'static str, kind: &'static str, labels: &'static [&'static str], help: &'static str) -> Series {
    Series { name, kind, labels, help }
}

const MESSAGES_CREATED: Series =
    series("gateway_messages_created_total", "counter", &["mode"], "Messages stored by the API, by send mode (queue, immediate).");
const ENQUEUE_FAILURES: Series =
    series("gateway_enqueue_failures_total", "counter", &[], "Stored messages the queue could not take at once (the sweeper queues them).");
const REDRIVES: Series =
    series("gateway_redrives_total", "counter", &[], "Dead-lettered messages sent again by an operator (POST …/messages/{id}/retry).");
const CANCELS: Series =
    series("gateway_cancels_total", "counter", &[], "Messages withdrawn before Twilio had them (POST …/messages/{id}/cancel).");
const SENDS: Series = series(
    "gateway_sends_total",
    "counter",
    &["outcome"],
    "Send attempts by outcome: accepted, reconciled, reconcile_ambiguous, retrying, throttled, failed, dead_lettered, expired.",
);
const TWILIO_SECONDS: Series = series("gateway_twilio_request_seconds", "histogram", &[], "Time of one create request to Twilio.");
const CALLBACKS: Series = series(
    "gateway_callbacks_total",
    "counter",
    &["result"],
    "Status callbacks by result: applied, ignored (stale), duplicate, unmatched (SID not recorded yet), not_tracked.",
);
const POLLS: Series = series(
    "gateway_polls_total",
    "counter",
    &["result"],
    "Messages whose news stopped coming asked about at Twilio, by result: recovered (a status no callback brought), unchanged, \
     not_found, error.",
);
const POLL_RECOVERED: Series = series(
    "gateway_poll_recovered_total",
    "counter",
    &["status"],
    "Statuses the poller recovered from Twilio (callbacks that never came), by the status applied.",
);
const INBOUND: Series = series("gateway_inbound_total", "counter", &["duplicate"], "Incoming messages, and whether the SID had been seen.");
const WEBHOOKS_REJECTED: Series =
    series("gateway_webhooks_rejected_total", "counter", &["reason"], "Webhook requests refused: missing_signature, invalid_signature.");
const RATE_LIMITED: Series =
    series("gateway_rate_limited_total", "counter", &["bucket"], "Requests refused with 429, by bucket (api, send, webhook).");
const WRITER_BATCH_SIZE: Series = series("gateway_writer_batch_size", "histogram", &[], "Commands per write batch (one transaction).");
const WRITER_BATCH_SECONDS: Series = series("gateway_writer_batch_seconds", "histogram", &[], "Time to run and commit one write batch.");
const WRITER_ISOLATIONS: Series =
    series("gateway_writer_isolations_total", "counter", &[], "Failed batches run again in parts to isolate the failing command.");
const QUEUE_DEPTH: Series = series("gateway_queue_depth", "gauge", &[], "Sendable messages (pending or retrying), due or not.");
const QUEUE_DUE: Series = series("gateway_queue_due", "gauge", &[], "Sendable messages due now and not held by a worker.");
const OLDEST_DUE: Series = series(
    "gateway_oldest_due_message_age_seconds",
    "gauge",
    &[],
    "How long the oldest due message has waited past its due time (0 when none waits).",
);
const HTTP_REQUESTS: Series = series(
    "gateway_http_requests_total",
    "counter",
    &["route", "status"],
    "HTTP requests answered, by route template (`unmatched` for none) and status class (2xx, 4xx, 5xx, …).",
);
const SENDER_IN_FLIGHT: Series = series("gateway_sender_in_flight", "gauge", &["sender"], "Sends in progress per sender.");
const SENDER_THROTTLED: Series = series(
    "gateway_sender_throttled_total",
    "counter",
    &["sender"],
    "Sends Twilio answered with throttling (429, 20429, 63018), per sender: the sender is held back, the attempt not counted.",
);

const EVENT_ATTEMPTS: Series = series(
    "gateway_event_attempts_total",
    "counter",
    &["result"],
    "Attempts to deliver an event to an application endpoint (or to run the inbound handlers), by result: delivered, \
     retrying, failed (given up after EVENTS_MAX_AGE_MS).",
);
const EVENT_SECONDS: Series = series("gateway_event_attempt_seconds", "histogram", &[], "Time of one attempt to post an event.");
const EVENT_ENDPOINTS_DISABLED: Series = series(
    "gateway_event_endpoints_disabled_total",
    "counter",
    &[],
    "Endpoints disabled automatically because every delivery failed for EVENTS_DISABLE_AFTER_MS.",
);

/// Every series, for the documentation and the test that checks `/metrics` against it.
pub const SERIES: &[Series] = &[
    MESSAGES_CREATED,
    ENQUEUE_FAILURES,
    REDRIVES,
    CANCELS,
    SENDS,
    TWILIO_SECONDS,
    CALLBACKS,
    POLLS,
    POLL_RECOVERED,
    INBOUND,
    WEBHOOKS_REJECTED,
    RATE_LIMITED,
    WRITER_BATCH_SIZE,
    WRITER_BATCH_SECONDS,
    WRITER_ISOLATIONS,
    QUEUE_DEPTH,
    QUEUE_DUE,
    OLDEST_DUE,
    SENDER_IN_FLIGHT,
    SENDER_THROTTLED,
    HTTP_REQUESTS,
    EVENT_ATTEMPTS,
    EVENT_SECONDS,
    EVENT_ENDPOINTS_DISABLED,
];

/// An attempt to deliver an event ended with `result`, after `elapsed`.
pub fn event_attempt(result: &'static str, elapsed: Duration) {
    metrics::counter!(EVENT_ATTEMPTS.name, "result" => result).increment(1);
    metrics::histogram!(EVENT_SECONDS.name).record(elapsed.as_secs_f64());
}

/// An endpoint was disabled for failing.
pub fn event_endpoint_disabled() {
    metrics::counter!(EVENT_ENDPOINTS_DISABLED.name).increment(1);
}

/// The process-wide Prometheus recorder, installed (with every series described) on first use.
pub fn prometheus_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by an embedding application).
        let _ = metrics::set_global_recorder(recorder);
        for s in SERIES {
            match s.kind {
                "counter" => metrics::describe_counter!(s.name, s.help),
                "gauge" => metrics::describe_gauge!(s.name, s.help),
                _ => metrics::describe_histogram!(s.name, s.help),
            }
        }
        handle
    })
}

/// A message stored by the API.
pub fn message_created(immediate: bool) {
    metrics::counter!(MESSAGES_CREATED.name, "mode" => if immediate { "immediate" } else { "queue" }).increment(1);
}

/// A stored message the queue could not take.
pub fn enqueue_failed() {
    metrics::counter!(ENQUEUE_FAILURES.name).increment(1);
}

/// A dead-lettered message was redriven.
pub fn redriven() {
    metrics::counter!(REDRIVES.name).increment(1);
}

/// A message was canceled.
pub fn canceled() {
    metrics::counter!(CANCELS.name).increment(1);
}

/// A send attempt ended with `outcome`.
pub fn send(outcome: &'static str) {
    metrics::counter!(SENDS.name, "outcome" => outcome).increment(1);
}

/// One create request to Twilio took `elapsed`.
pub fn twilio_request(elapsed: Duration) {
    metrics::histogram!(TWILIO_SECONDS.name).record(elapsed.as_secs_f64());
}

/// A status callback ended with `result`.
pub fn callback(result: &'static str) {
    metrics::counter!(CALLBACKS.name, "result" => result).increment(1);
}

/// The poller asked Twilio about a message, with `result`.
pub fn poll(result: &'static str) {
    metrics::counter!(POLLS.name, "result" => result).increment(1);
}

/// The poller applied `status`, which no callback had brought.
pub fn poll_recovered(status: &'static str) {
    metrics::counter!(POLL_RECOVERED.name, "status" => status).increment(1);
}

/// An incoming message.
pub fn inbound(duplicate: bool) {
    metrics::counter!(INBOUND.name, "duplicate" => if duplicate { "true" } else { "false" }).increment(1);
}

/// A webhook refused for `reason`.
pub fn webhook_rejected(reason: &'static str) {
    metrics::counter!(WEBHOOKS_REJECTED.name, "reason" => reason).increment(1);
}

/// A request refused by the rate limiter of `bucket`.
pub fn rate_limited(bucket: &'static str) {
    metrics::counter!(RATE_LIMITED.name, "bucket" => bucket).increment(1);
}

/// A write batch of `size` commands took `elapsed`.
pub fn writer_batch(size: usize, elapsed: Duration) {
    metrics::histogram!(WRITER_BATCH_SIZE.name).record(size as f64);
    metrics::histogram!(WRITER_BATCH_SECONDS.name).record(elapsed.as_secs_f64());
}

/// A failed batch was split to isolate a failing command.
pub fn writer_isolation() {
    metrics::counter!(WRITER_ISOLATIONS.name).increment(1);
}

/// The sendable backlog: all, due now, and how long the oldest due one has waited.
pub fn backlog(sendable: i64, due: i64, oldest_wait: Duration) {
    metrics::gauge!(QUEUE_DEPTH.name).set(sendable as f64);
    metrics::gauge!(QUEUE_DUE.name).set(due as f64);
    metrics::gauge!(OLDEST_DUE.name).set(oldest_wait.as_secs_f64());
}

/// An HTTP request to `route` (its template) was answered with `status`.
pub fn http_request(route: Option<&str>, status: u16) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let route = route.map_or_else(|| "unmatched".to_owned(), str::to_owned);
    metrics::counter!(HTTP_REQUESTS.name, "route" => route, "status" => class).increment(1);
}

/// Sends in progress from `sender` changed by `delta`.
pub fn sender_in_flight(sender: &str, delta: f64) {
    metrics::gauge!(SENDER_IN_FLIGHT.name, "sender" => sender.to_owned()).increment(delta);
}

/// Twilio throttled a send from `sender`.
pub fn sender_throttled(sender: &str) {
    metrics::counter!(SENDER_THROTTLED.name, "sender" => sender.to_owned()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::SERIES;

    #[test]
    fn every_series_is_named_once_with_the_gateway_prefix() {
        let mut names: Vec<_> = SERIES.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SERIES.len());
        assert!(SERIES.iter().all(|s| s.name.starts_with("gateway_") && !s.help.is_empty()));
        assert!(SERIES.iter().all(|s| matches!(s.kind, "counter" | "gauge" | "histogram")));
    }
}
