//! The gateway as a library: [`Gateway`] is what the HTTP handlers call, and what an application
//! that embeds the gateway calls directly (send, look up, receive).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::InboundConfig;
use crate::domain::{MessageId, NewOutboundMessage};
use crate::queue::{Job, JobQueue};
use crate::store::{Contact, InboundMessage, InboundOutcome, MessageRecord, OptChange, Store, now_ms};
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

/// Something that reacts to incoming messages: an auto-responder, a bot, a bridge to the app.
#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    /// Called once per new incoming message (never for a duplicate delivery of the same SID).
    /// Returning text answers the user with it (TwiML `<Message>`).
    async fn handle(&self, message: &InboundMessage, contact: &Contact) -> Option<String>;
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

/// The gateway's operations.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    queue: Arc<dyn JobQueue>,
    sender: Arc<Sender>,
    handlers: Vec<Arc<dyn InboundHandler>>,
    inbound: InboundConfig,
    http: reqwest::Client,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("sender", &self.inner.sender).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ForwardedMessage<'a> {
    event: &'static str,
    message_id: String,
    message_sid: &'a str,
    from: &'a str,
    to: &'a str,
    body: Option<&'a str>,
    media_urls: &'a [String],
    profile_name: Option<&'a str>,
    wa_id: Option<&'a str>,
}

impl Gateway {
    /// Assembles the gateway from its parts.
    pub fn new(
        store: Store,
        queue: Arc<dyn JobQueue>,
        sender: Arc<Sender>,
        handlers: Vec<Arc<dyn InboundHandler>>,
        inbound: InboundConfig,
    ) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { inner: Arc::new(Inner { store, queue, sender, handlers, inbound, http }) }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.inner.queue
    }

    /// Stores `message` and queues it, or sends it now in [`SendMode::Immediate`].
    pub async fn send(&self, message: NewOutboundMessage, mode: SendMode) -> anyhow::Result<MessageRecord> {
        let now = now_ms();
        let (stored, created) = self.inner.store.insert_outbound(&message, self.inner.sender.from(), now).await?;
        if !created {
            tracing::info!(message_id = %stored.id, "idempotency key already used: returning the earlier message");
            return Ok(stored);
        }
        let due = stored.next_attempt_at.unwrap_or(now);
        // In immediate mode the job is only a safety net in case this process dies mid-send.
        let run_at = match mode {
            SendMode::Queue => due,
            SendMode::Immediate => now + self.inner.sender.config().lease.as_millis() as i64,
        };
        if let Err(e) = self.inner.queue.enqueue(Job { message_id: stored.id, priority: stored.priority, run_at }).await {
            // The message is stored, so it is accepted: the sweeper queues it from the database.
            tracing::warn!(message_id = %stored.id, error = %e, "queue unavailable; the sweeper will queue the stored message");
            metrics::counter!("gateway_enqueue_failures_total").increment(1);
        }
        metrics::counter!("gateway_messages_created_total", "mode" => if mode == SendMode::Queue { "queue" } else { "immediate" })
            .increment(1);
        if mode == SendMode::Immediate && due <= now {
            let worker = format!("api-{}", uuid::Uuid::new_v4().simple());
            self.inner.sender.process(stored.id, &worker).await?;
            return Ok(self.inner.store.message(stored.id).await?.unwrap_or(stored));
        }
        Ok(stored)
    }

    /// Stores an incoming message, updates its contact, and runs the handlers (once per SID).
    pub async fn receive(&self, message: InboundMessage) -> anyhow::Result<InboundReply> {
        let opt = OptChange::from_body(message.body.as_deref());
        let InboundOutcome { message_id, duplicate, contact } = self.inner.store.record_inbound(&message, opt).await?;
        metrics::counter!("gateway_inbound_total", "duplicate" => if duplicate { "true" } else { "false" }).increment(1);
        if duplicate {
            return Ok(InboundReply { message_id, duplicate, reply: None });
        }
        let reply = match opt {
            OptChange::OptOut => {
                Some("You have been unsubscribed and will receive no more messages. Reply START to subscribe again.".to_owned())
            }
            OptChange::OptIn => Some("You have been subscribed again. Reply STOP to unsubscribe.".to_owned()),
            OptChange::None => self.run_handlers(&message, &contact).await,
        };
        self.forward(&message, message_id);
        Ok(InboundReply { message_id, duplicate, reply })
    }

    async fn run_handlers(&self, message: &InboundMessage, contact: &Contact) -> Option<String> {
        let mut reply = None;
        for handler in &self.inner.handlers {
            if let Some(text) = handler.handle(message, contact).await {
                reply.get_or_insert(text);
            }
        }
        reply.or_else(|| self.inner.inbound.auto_reply.clone())
    }

    /// Posts the message to the application's URL, in the background, with a few retries.
    fn forward(&self, message: &InboundMessage, id: MessageId) {
        let Some(url) = self.inner.inbound.forward_url.clone() else { return };
        let payload = serde_json::to_vec(&ForwardedMessage {
            event: "message.received",
            message_id: id.to_string(),
            message_sid: &message.sid,
            from: message.from.as_e164(),
            to: &message.to,
            body: message.body.as_deref(),
            media_urls: &message.media_urls,
            profile_name: message.profile_name.as_deref(),
            wa_id: message.wa_id.as_deref(),
        })
        .unwrap_or_default();
        let http = self.inner.http.clone();
        tokio::spawn(async move {
            for attempt in 1..=3u32 {
                let sent = http.post(&url).header("content-type", "application/json").body(payload.clone()).send().await;
                match sent {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => tracing::warn!(status = %r.status(), attempt, "inbound forward refused"),
                    Err(e) => tracing::warn!(error = %e, attempt, "inbound forward failed"),
                }
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
        });
    }
}
