//! Store-level helpers for tests that play a worker by hand.

use std::time::Duration;

use whatsapp_gateway::domain::{Content, MessageId, NewOutboundMessage, PhoneNumber, Priority, now_ms};
use whatsapp_gateway::store::Store;

use crate::helpers::SENDER;

/// A free-form outbound message to `to`, as the API would build it.
pub fn outbound(to: &str) -> NewOutboundMessage {
    NewOutboundMessage {
        id: MessageId::new(),
        to: PhoneNumber::parse(to).unwrap(),
        from: None,
        content: Content::FreeForm { body: Some("x".into()), media_urls: vec![] },
        priority: Priority::DEFAULT,
        send_at: None,
        reference: None,
        metadata: None,
        idempotency_key: None,
        validity_s: None,
        fallback: None,
        force: false,
    }
}

pub fn sender() -> PhoneNumber {
    PhoneNumber::parse(SENDER).unwrap()
}

/// Stores a message to `to` held back an hour (so no worker takes it), claims it for `worker`
/// and records attempt 1 as leaving, as a worker does just before calling Twilio.
pub async fn in_flight(store: &Store, to: &str, worker: &str) -> (MessageId, i64) {
    let now = now_ms();
    let message = NewOutboundMessage { send_at: Some(now + 3_600_000), ..outbound(to) };
    let id = message.id;
    store.insert_outbound(message, sender(), now).await.unwrap();
    store.claim_now(id, worker, Duration::from_secs(3600)).await.unwrap().expect("claimed");
    let attempt = store.begin_attempt(id, worker, Duration::from_secs(3600)).await.unwrap().expect("lease held");
    (id, attempt)
}
