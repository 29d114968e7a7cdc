//! An incoming WhatsApp message, as Twilio's webhook describes it.

use super::clock::UnixMillis;
use super::ids::MessageSid;
use super::phone::PhoneNumber;

/// An incoming WhatsApp message, parsed from Twilio's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Twilio's SID.
    pub sid: MessageSid,
    /// The user who wrote.
    pub from: PhoneNumber,
    /// Our number they wrote to.
    pub to: PhoneNumber,
    /// Text.
    pub body: Option<String>,
    /// Media URLs.
    pub media_urls: Vec<String>,
    /// WhatsApp profile name.
    pub profile_name: Option<String>,
    /// WhatsApp id (the number without `+`).
    pub wa_id: Option<String>,
    /// When we received it.
    pub received_at: UnixMillis,
}
