//! What happens to an incoming message after it is stored: the consent keywords are answered,
//! then the handlers (and the configured auto-reply). The handlers run from the outbox: the
//! message's `message.received` event is stored with it for the gateway's own `handlers`
//! endpoint, the webhook runs them and records that it did, and if it could not (the process
//! died), the dispatcher runs them later and sends their answer as a message.

use async_trait::async_trait;

use crate::config::InboundConfig;
use crate::domain::{InboundDetails, InboundMessage};
use crate::store::{Contact, MessageRecord};

/// Something that reacts to incoming messages: an auto-responder, a bot, a bridge to the app.
#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    /// Called for each new incoming message, at least once: normally once, by the webhook that
    /// stored it; again only if the process died before recording that it ran (never for
    /// Twilio's redelivery of a message whose handlers ran). Returning text answers the user with
    /// it (TwiML `<Message>`, or a message sent from the outbox).
    async fn handle(&self, message: &InboundMessage, contact: &Contact) -> Option<String>;
}

/// Runs the handlers.
pub(crate) struct Handlers {
    handlers: Vec<std::sync::Arc<dyn InboundHandler>>,
    config: InboundConfig,
}

impl Handlers {
    pub fn new(handlers: Vec<std::sync::Arc<dyn InboundHandler>>, config: InboundConfig) -> Self {
        Self { handlers, config }
    }

    /// Whether there is anything to run (a handler, or an auto-reply).
    pub fn active(&self) -> bool {
        !self.handlers.is_empty() || self.config.auto_reply.is_some()
    }

    /// The first handler's answer, or the configured auto-reply.
    pub async fn reply(&self, message: &InboundMessage, contact: &Contact) -> Option<String> {
        let mut reply = None;
        for handler in &self.handlers {
            if let Some(text) = handler.handle(message, contact).await {
                reply.get_or_insert(text);
            }
        }
        reply.or_else(|| self.config.auto_reply.clone())
    }
}

/// The incoming message a stored row is (for handlers run from the outbox).
pub(crate) fn stored_inbound(m: &MessageRecord, contact: Option<&Contact>) -> Option<InboundMessage> {
    Some(InboundMessage {
        sid: m.message_sid.clone()?,
        from: m.from.number()?.clone(),
        to: m.to.clone(),
        body: m.body.clone(),
        media_urls: m.media_urls.clone(),
        profile_name: contact.and_then(|c| c.profile_name.clone()),
        wa_id: contact.and_then(|c| c.wa_id.clone()),
        received_at: m.created_at,
        details: InboundDetails::from_column(m.details.as_deref()),
    })
}
