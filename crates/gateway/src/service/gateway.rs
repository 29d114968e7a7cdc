//! [`Gateway`]: what the HTTP handlers call, and what an application that embeds the gateway
//! calls directly — send, receive, apply status reports, look up. It is the only way from the
//! API to the store and the queue.

use std::sync::Arc;

use super::error::{Dependency, GatewayError};
use super::inbound::{Handlers, InboundHandler};
use crate::config::{EventsConfig, InboundConfig};
use crate::domain::{
    Granularity, InboundMessage, MessageId, MessageSid, MessageStatus, NewOutboundMessage, OptChange, Origin, PhoneNumber, Route,
    SenderHealth, UnixMillis, now_ms,
};
use crate::queue::{Job, JobQueue};
use crate::store::{
    ApplyOutcome, AttemptRecord, Backlog, ListFilter, MessageRecord, MetricsBucket, OperatorOutcome, PhonePerformance, SenderStats,
    StatusLogEntry, StatusReport, Store,
};
use crate::telemetry::metrics;
use crate::worker::Sender;

/// How `send` hands a message over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendMode {
    /// Store and queue; a worker sends it (the default).
    #[default]
    Queue,
    /// Store and send within the call; falls back to the queue if Twilio asks to retry.
    Immediate,
}

/// What the webhook answers to an incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundReply {
    /// The stored message.
    pub message_id: MessageId,
    /// The same SID had been received before.
    pub duplicate: bool,
    /// Text to answer with, if any.
    pub reply: Option<String>,
}

/// How to find a message for its delivery status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// By the gateway's id.
    Id(MessageId),
    /// By Twilio's SID.
    Sid(MessageSid),
}

/// A message with its full history and every send attempt.
#[derive(Debug, Clone)]
pub struct DeliveryStatus {
    /// The message.
    pub message: MessageRecord,
    /// Every status report, oldest first.
    pub history: Vec<StatusLogEntry>,
    /// Every send attempt, oldest first.
    pub attempts: Vec<AttemptRecord>,
}

/// How long a readiness probe waits for a dependency to answer (Kubernetes' default probe
/// timeout is 1 s: an answer later than that is no answer).
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// One sender as `GET /senders` shows it.
#[derive(Debug, Clone)]
pub struct SenderReport {
    /// The number or the Messaging Service.
    pub origin: Origin,
    /// Whether a message that names no `from` may go out from it.
    pub is_default: bool,
    /// Its sends per second, all instances together.
    pub pace_per_sec: u32,
    /// Its messages since the time asked about.
    pub stats: SenderStats,
    /// How much longer this instance holds it back because Twilio throttled it.
    pub held_back: Option<std::time::Duration>,
    /// Twilio said its account is locked (63051), and nothing was delivered from it since.
    pub locked: bool,
    /// Its health.
    pub health: SenderHealth,
}

/// Whether each dependency answers.
#[derive(Debug)]
pub struct Health {
    /// The database.
    pub database: Result<(), GatewayError>,
    /// The queue.
    pub queue: Result<(), GatewayError>,
}

/// The gateway's operations.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    queue: Arc<dyn JobQueue>,
    sender: Arc<Sender>,
    handlers: Handlers,
    events: EventsConfig,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("sender", &self.inner.sender).finish_non_exhaustive()
    }
}

impl Gateway {
    /// Assembles the gateway from its parts.
    pub fn new(
        store: Store,
        sender: Arc<Sender>,
        handlers: Vec<Arc<dyn InboundHandler>>,
        inbound: InboundConfig,
        events: EventsConfig,
    ) -> Self {
        let queue = sender.queue().clone();
        Self { inner: Arc::new(Inner { store, queue, sender, handlers: Handlers::new(handlers, inbound), events }) }
    }

    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(super) fn events_config(&self) -> &EventsConfig {
        &self.inner.events
    }

    pub(super) fn handlers_active(&self) -> bool {
        self.inner.handlers.active()
    }

    /// Stores `message` and queues it, or sends it now in [`SendMode::Immediate`]. With an
    /// idempotency key used before, returns the earlier message and stores nothing.
    pub async fn send(&self, mut message: NewOutboundMessage, mode: SendMode) -> Result<MessageRecord, GatewayError> {
        let now = now_ms();
        let lease = self.inner.sender.config().lease;
        let due = message.send_at.unwrap_or(now).max(now);
        let immediate = mode == SendMode::Immediate && due <= now;
        if immediate {
            // Not due for the workers: this call sends it. Should the process die mid-send, the
            // message becomes due when the lease would have ended.
            message.send_at = Some(now + lease.as_millis() as i64);
        }
        let route =
            self.inner.sender.senders().route(message.from.clone()).map_err(|reason| GatewayError::Refused { field: "from", reason })?;
        let (stored, created) = self.inner.store.insert_outbound(message, route, now).await?;
        if !created {
            tracing::info!(message_id = %stored.id, "idempotency key already used: returning the earlier message");
            return Ok(stored);
        }
        metrics::message_created(mode == SendMode::Immediate);
        let job = Job { message_id: stored.id, priority: stored.priority, run_at: stored.next_attempt_at.unwrap_or(now) };
        if let Err(e) = self.inner.queue.enqueue(job).await {
            // The message is stored, so it is accepted: the sweeper queues it from the database.
            tracing::warn!(message_id = %stored.id, error = %crate::telemetry::chain(&e), "queue unavailable; the sweeper will queue the stored message");
            metrics::enqueue_failed();
        }
        if !immediate {
            return Ok(stored);
        }
        let worker = format!("api-{}", uuid::Uuid::new_v4().simple());
        if let Some(claim) = self.inner.store.claim_now(stored.id, &worker, lease).await? {
            self.inner.sender.process(claim, &worker).await?;
        }
        Ok(self.inner.store.message(stored.id).await?.unwrap_or(stored))
    }

    /// Sends a dead-lettered message again (`pending`, due now, a fresh allowance of attempts) and
    /// returns it as it is then. A message in any other status, or one Twilio has since reported
    /// on, is a [`GatewayError::WrongStatus`].
    pub async fn redrive(&self, id: MessageId) -> Result<MessageRecord, GatewayError> {
        let message = operated(id, self.inner.store.redrive(id).await?, |current, unsafe_now| {
            if unsafe_now {
                format!("{id} is dead-lettered, but Twilio has since reported on it: sending it again could send it twice")
            } else {
                format!("only a dead-lettered message can be redriven; {id} is {current}")
            }
        })?;
        metrics::redriven();
        let job = Job { message_id: id, priority: message.priority, run_at: message.next_attempt_at.unwrap_or_else(now_ms) };
        if let Err(e) = self.inner.queue.enqueue(job).await {
            tracing::warn!(message_id = %id, error = %crate::telemetry::chain(&e), "queue unavailable; the sweeper will queue the redriven message");
            metrics::enqueue_failed();
        }
        tracing::info!(message_id = %id, "dead-lettered message redriven");
        Ok(message)
    }

    /// Redrives every dead-lettered message that `filter` matches (its status is taken as
    /// `dead_lettered`), at most `filter.limit` of them, newest first as listed; returns the ones
    /// redriven (a message redriven meanwhile by someone else is left out).
    pub async fn redrive_matching(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, GatewayError> {
        let filter = ListFilter { status: Some(MessageStatus::DeadLettered), ..filter.clone() };
        let mut found = self.inner.store.list_messages(&filter).await?;
        // The list's `phone` matches either end; a redrive by phone means the recipient.
        if let Some(phone) = &filter.phone {
            found.retain(|m| m.to == *phone);
        }
        // Concurrently, so that the writer applies them in a few batches.
        let redriven = futures_util::future::join_all(found.iter().map(|m| self.redrive(m.id))).await;
        let mut done = Vec::with_capacity(redriven.len());
        for result in redriven {
            match result {
                Ok(message) => done.push(message),
                Err(GatewayError::WrongStatus(_) | GatewayError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Withdraws a message Twilio does not have yet (`pending`, scheduled, `retrying`): it
    /// becomes `canceled` and is never sent. Too late (Twilio has it, or it ended) or not safe yet
    /// (being sent right now) is a [`GatewayError::WrongStatus`].
    pub async fn cancel(&self, id: MessageId) -> Result<MessageRecord, GatewayError> {
        let message = operated(id, self.inner.store.cancel(id).await?, |current, unsafe_now| {
            if unsafe_now {
                format!(
                    "{id} ({current}) is being sent right now, or an earlier attempt may have reached Twilio; ask again in a few seconds"
                )
            } else {
                format!("only a message Twilio does not have yet (pending, scheduled or retrying) can be canceled; {id} is {current}")
            }
        })?;
        metrics::canceled();
        tracing::info!(message_id = %id, "message canceled");
        Ok(message)
    }

    /// Stores an incoming message, updates its contact, and runs the handlers: once per SID, and
    /// at least once (see [`InboundHandler`]). Twilio's redelivery of a message answered before
    /// gets the same answer again; a keyword (STOP, START) gets its confirmation.
    pub async fn receive(&self, message: InboundMessage) -> Result<InboundReply, GatewayError> {
        let opt = OptChange::from_body(message.body.as_deref());
        let outcome = self.inner.store.record_inbound(message.clone(), opt).await?;
        metrics::inbound(outcome.duplicate);
        let answered = |reply: Option<String>| InboundReply { message_id: outcome.message_id, duplicate: outcome.duplicate, reply };
        if let Some(text) = opt.reply() {
            // A keyword is answered by its confirmation, never by the handlers.
            if let Some(event) = &outcome.handler_event {
                self.inner.store.mark_handled(event, None, now_ms()).await?;
            }
            return Ok(answered(Some(text.to_owned())));
        }
        if !self.inner.handlers.active() {
            return Ok(answered(None));
        }
        let event = if outcome.duplicate {
            match self.inner.store.handled(outcome.message_id).await? {
                // The handlers ran: Twilio did not get (or did not take) the answer; give it again.
                Some(d) if d.status != "pending" => return Ok(answered(d.result)),
                Some(d) => d.event_id,
                None => return Ok(answered(None)),
            }
        } else {
            match &outcome.handler_event {
                Some(event) => event.clone(),
                None => return Ok(answered(None)),
            }
        };
        let reply = self.inner.handlers.reply(&message, &outcome.contact).await;
        if self.inner.store.mark_handled(&event, reply.as_deref(), now_ms()).await? {
            return Ok(answered(reply));
        }
        // Someone else settled it meanwhile: another delivery of this webhook (whose answer is
        // given again here: Twilio takes one of them), or the dispatcher, which sent the answer
        // as a message (and recorded none to give).
        let settled = self.inner.store.handled(outcome.message_id).await?;
        Ok(answered(settled.filter(|d| d.status != "pending").and_then(|d| d.result)))
    }

    /// Runs the handlers for a stored `message.received` event the webhook did not get to (the
    /// dispatcher's handlers endpoint); their answer is sent as a message (once: its idempotency
    /// key is the incoming message's id), so a later redelivery of the webhook answers nothing.
    pub(crate) async fn run_stored_handlers(&self, delivery: &crate::store::events::DueDelivery) -> Result<Option<String>, String> {
        let payload: serde_json::Value = serde_json::from_str(&delivery.payload).map_err(|e| format!("unreadable event: {e}"))?;
        let id: MessageId =
            payload["data"]["message_id"].as_str().and_then(|id| id.parse().ok()).ok_or_else(|| "the event names no message".to_owned())?;
        let store = &self.inner.store;
        let Some(stored) = store.message(id).await.map_err(|e| e.to_string())? else { return Ok(None) };
        if OptChange::from_body(stored.body.as_deref()).reply().is_some() {
            return Ok(None);
        }
        let Some(from) = stored.from.number().cloned() else { return Ok(None) };
        let contact = store.contact(&from).await.map_err(|e| e.to_string())?;
        let Some(message) = super::inbound::stored_inbound(&stored, contact.as_ref()) else { return Ok(None) };
        let contact = contact.unwrap_or_else(|| crate::store::records::Contact::blank(&from));
        let Some(text) = self.inner.handlers.reply(&message, &contact).await else { return Ok(None) };
        let reply = NewOutboundMessage {
            id: MessageId::new(),
            to: from,
            from: Some(Origin::Number(stored.to.clone())),
            content: crate::domain::Content::FreeForm { body: Some(text.clone()), media_urls: Vec::new() },
            priority: crate::domain::Priority::DEFAULT,
            send_at: None,
            reference: None,
            metadata: None,
            idempotency_key: Some(format!("gateway:inbound-reply:{id}")),
            validity_s: None,
            fallback: None,
            force: false,
        };
        // From the number the contact wrote to, if it is one of ours; else the default route.
        let sent = match self.send(reply.clone(), SendMode::Queue).await {
            Err(GatewayError::Refused { field: "from", .. }) => {
                self.send(NewOutboundMessage { from: None, ..reply }, SendMode::Queue).await
            }
            other => other,
        };
        let sent = sent.map_err(|e| e.to_string())?;
        tracing::info!(message_id = %id, reply_id = %sent.id, "inbound handlers run from the outbox; their answer sent as a message");
        Ok(None)
    }

    /// Shows the sender of incoming message `id` that a reply is being typed (WhatsApp's typing
    /// indicator, for up to 25 seconds or until the reply), which also marks it read.
    pub async fn typing(&self, id: MessageId) -> Result<MessageRecord, GatewayError> {
        let message = self.message(id).await?;
        let sid = match (&message.direction, &message.message_sid) {
            (crate::domain::Direction::Inbound, Some(sid)) => sid.clone(),
            _ => {
                return Err(GatewayError::WrongStatus(format!(
                    "a typing indicator answers an incoming message; {id} is an outbound message"
                )));
            }
        };
        match self.inner.sender.twilio().typing_indicator(&sid).await {
            Ok(()) => Ok(message),
            Err(crate::twilio::SendError::Api { status, code, message: text }) if (400..500).contains(&status) && status != 429 => {
                Err(GatewayError::WrongStatus(format!(
                    "Twilio refused the typing indicator for {sid} (HTTP {status}{}): {text}",
                    code.map(|c| format!(", code {c}")).unwrap_or_default()
                )))
            }
            Err(e) => Err(GatewayError::Unavailable { dependency: super::error::Dependency::Twilio, source: Box::new(e) }),
        }
    }

    /// Applies a status report (a Twilio callback) to the message it names.
    pub async fn report_status(&self, report: StatusReport) -> Result<ApplyOutcome, GatewayError> {
        Ok(self.inner.store.apply_status(report).await?)
    }

    /// One message.
    pub async fn message(&self, id: MessageId) -> Result<MessageRecord, GatewayError> {
        self.inner.store.message(id).await?.ok_or_else(|| GatewayError::NotFound(format!("no message with id {id}")))
    }

    /// A message with its history and attempts.
    pub async fn delivery_status(&self, lookup: &Lookup) -> Result<DeliveryStatus, GatewayError> {
        let store = &self.inner.store;
        let message = match lookup {
            Lookup::Id(id) => store.message(*id).await?,
            Lookup::Sid(sid) => store.message_by_sid(sid).await?,
        };
        let message = message.ok_or_else(|| GatewayError::NotFound("no such message".into()))?;
        let history = store.status_history(message.id).await?;
        let attempts = store.attempts(message.id).await?;
        Ok(DeliveryStatus { message, history, attempts })
    }

    /// Messages matching `filter`, newest first.
    pub async fn list_messages(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, GatewayError> {
        Ok(self.inner.store.list_messages(filter).await?)
    }

    /// Metrics buckets in `[from, to)`, for all phones or one.
    pub async fn metrics(
        &self,
        granularity: Granularity,
        from: UnixMillis,
        to: UnixMillis,
        phone: Option<&PhoneNumber>,
    ) -> Result<Vec<MetricsBucket>, GatewayError> {
        Ok(self.inner.store.metrics_buckets(granularity, from, to, phone).await?)
    }

    /// A recipient's performance.
    pub async fn phone_performance(&self, phone: &PhoneNumber) -> Result<PhonePerformance, GatewayError> {
        let mut performance = self
            .inner
            .store
            .phone_performance(phone)
            .await?
            .ok_or_else(|| GatewayError::NotFound(format!("no message has been sent to {phone}")))?;
        let contact = self.inner.store.contact(phone).await?;
        performance.suppressed = contact.and_then(|c| c.suppressed_code.zip(c.suppressed_at));
        Ok(performance)
    }

    /// Each configured sender (the numbers, then the Messaging Service): its pace, what its
    /// messages created since `since` came to, and its health.
    pub async fn senders(&self, since: UnixMillis) -> Result<Vec<SenderReport>, GatewayError> {
        let senders = self.inner.sender.senders();
        let default = senders.route(None).ok();
        let pacer = self.inner.sender.pacer();
        let mut reports = Vec::new();
        for origin in senders.all() {
            let stats = self.inner.store.sender_stats(&origin, since).await?;
            let held_back = pacer.held_for(origin.as_str());
            let locked = stats.locked_at.is_some_and(|locked| stats.last_delivered_at.is_none_or(|delivered| delivered < locked));
            reports.push(SenderReport {
                is_default: match &default {
                    Some(Route::From(o)) => *o == origin,
                    Some(Route::Pool(pool)) => origin.number().is_some_and(|n| pool.contains(n)),
                    None => false,
                },
                pace_per_sec: pacer.rate(origin.as_str()),
                health: SenderHealth::assess(stats.delivered, stats.failed, locked, held_back.is_some()),
                held_back,
                locked,
                origin,
                stats,
            });
        }
        Ok(reports)
    }

    /// The sendable backlog right now.
    pub async fn backlog(&self) -> Result<Backlog, GatewayError> {
        Ok(self.inner.store.backlog(now_ms()).await?)
    }

    /// Whether the database and the queue answer, each within [`PROBE_TIMEOUT`] (asked at once):
    /// a dependency that hangs (a database restarting, a pool waiting to connect) is unreachable
    /// now, not ready once it comes back.
    pub async fn health(&self) -> Health {
        let (database, queue) =
            tokio::join!(probe(Dependency::Database, self.inner.store.ping()), probe(Dependency::Queue, self.inner.queue.ping()));
        Health { database, queue }
    }

    /// Closes the store once everything in hand is written.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }
}

/// Awaits `check` for at most [`PROBE_TIMEOUT`]: no answer in time, or an unreachable answer, is
/// `dependency` unavailable.
async fn probe<E: Into<GatewayError>>(dependency: Dependency, check: impl Future<Output = Result<(), E>>) -> Result<(), GatewayError> {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(answer) => answer.map_err(|e| match e.into() {
            GatewayError::Unavailable { source, .. } => GatewayError::Unavailable { dependency, source },
            other => other,
        }),
        Err(elapsed) => Err(GatewayError::Unavailable { dependency, source: Box::new(elapsed) }),
    }
}

/// The message an operator's command left, or why it did nothing: `refusal` words it from the
/// message's status and whether the command was only unsafe now ([`OperatorOutcome::Unsafe`]).
fn operated(
    id: MessageId,
    outcome: OperatorOutcome,
    refusal: impl FnOnce(MessageStatus, bool) -> String,
) -> Result<MessageRecord, GatewayError> {
    match outcome {
        OperatorOutcome::Done(message) => Ok(*message),
        OperatorOutcome::NotFound => Err(GatewayError::NotFound(format!("no message with id {id}"))),
        OperatorOutcome::NotApplicable { current } => Err(GatewayError::WrongStatus(refusal(current, false))),
        OperatorOutcome::Unsafe { current } => Err(GatewayError::WrongStatus(refusal(current, true))),
    }
}
