//! What happens to an incoming message after it is stored: the consent keywords are answered,
//! then the handlers (and the configured auto-reply), and the message is forwarded to the
//! application.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::InboundConfig;
use crate::domain::{InboundMessage, MessageId};
use crate::store::Contact;

/// Something that reacts to incoming messages: an auto-responder, a bot, a bridge to the app.
#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    /// Called once per new incoming message (never for a duplicate delivery of the same SID).
    /// Returning text answers the user with it (TwiML `<Message>`).
    async fn handle(&self, message: &InboundMessage, contact: &Contact) -> Option<String>;
}

/// Runs the handlers, and forwards incoming messages to the application.
pub(crate) struct Handlers {
    handlers: Vec<std::sync::Arc<dyn InboundHandler>>,
    config: InboundConfig,
    http: reqwest::Client,
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

impl Handlers {
    pub fn new(handlers: Vec<std::sync::Arc<dyn InboundHandler>>, config: InboundConfig) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { handlers, config, http }
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

    /// Posts the message to the application's URL, in the background, with a few retries.
    pub fn forward(&self, message: &InboundMessage, id: MessageId) {
        let Some(url) = self.config.forward_url.clone() else { return };
        let payload = serde_json::to_vec(&ForwardedMessage {
            event: "message.received",
            message_id: id.to_string(),
            message_sid: message.sid.as_str(),
            from: message.from.as_e164(),
            to: message.to.as_e164(),
            body: message.body.as_deref(),
            media_urls: &message.media_urls,
            profile_name: message.profile_name.as_deref(),
            wa_id: message.wa_id.as_deref(),
        })
        .unwrap_or_default();
        let http = self.http.clone();
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
