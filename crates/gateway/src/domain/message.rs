//! What an application asks the gateway to send, already validated.

use serde::{Deserialize, Serialize};

use super::clock::UnixMillis;
use super::ids::MessageId;
use super::origin::Origin;
use super::phone::PhoneNumber;
use super::priority::Priority;

/// Whether a message was sent by us or received from a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent by the gateway.
    Outbound,
    /// Received from a WhatsApp user.
    Inbound,
}

impl Direction {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }

    /// Parses the stored name.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Outbound, Self::Inbound].into_iter().find(|d| d.as_str() == value)
    }
}

/// The most media URLs Twilio accepts on one message.
pub const MAX_MEDIA: usize = 10;
/// The longest body Twilio accepts, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// What a message carries: free-form text and/or media, or an approved template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Free-form content, allowed inside the 24-hour customer service window.
    FreeForm {
        /// Text, if any.
        body: Option<String>,
        /// Media URLs (at most [`MAX_MEDIA`]).
        media_urls: Vec<String>,
    },
    /// A pre-approved Content Template (`HX…`), allowed at any time.
    Template {
        /// The template SID.
        content_sid: String,
        /// The template variables, a JSON object as text.
        content_variables: Option<String>,
    },
}

/// The template a free-form message is sent as when the contact's 24-hour customer service
/// window is closed (a `fallback` of the send request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The template SID (`HX…`).
    pub content_sid: String,
    /// Its variables, a JSON object as text.
    pub content_variables: Option<String>,
}

/// How long a contact's last message keeps WhatsApp's customer service window open, in which
/// free-form messages may be sent to it (24 hours).
pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Whether a contact who last wrote at `last_inbound_at` (if ever) can be sent free-form content
/// at `at`.
pub fn window_open(last_inbound_at: Option<UnixMillis>, at: UnixMillis) -> bool {
    last_inbound_at.is_some_and(|last| at - last < SERVICE_WINDOW_MS)
}

/// Why a contact's window is closed, in words: when it last wrote, or that it never did.
pub fn outside_window(last_inbound_at: Option<UnixMillis>) -> String {
    match last_inbound_at {
        Some(at) => format!("outside the 24-hour window (the contact last wrote at {})", rfc3339_seconds(at)),
        None => "outside the 24-hour window (the contact has never written)".to_owned(),
    }
}

/// A time as RFC 3339 to the second, for messages written to people.
pub fn rfc3339_seconds(at: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp(at.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The longest validity period Twilio takes (`ValidityPeriod`, seconds), and its default.
pub const MAX_VALIDITY_S: i64 = 36_000;

/// A validated request to send one message.
#[derive(Debug, Clone)]
pub struct NewOutboundMessage {
    /// The id the message will have.
    pub id: MessageId,
    /// The recipient.
    pub to: PhoneNumber,
    /// The sender asked for (one of the configured numbers, or the Messaging Service); `None`
    /// for the default route.
    pub from: Option<Origin>,
    /// What to send.
    pub content: Content,
    /// Queue priority.
    pub priority: Priority,
    /// Do not send before this time.
    pub send_at: Option<UnixMillis>,
    /// The application's own reference (e.g. a user id).
    pub reference: Option<String>,
    /// Free application metadata, a JSON object.
    pub metadata: Option<serde_json::Value>,
    /// The caller's idempotency key, scoped by caller: at most one message per key.
    pub idempotency_key: Option<String>,
    /// Seconds it may wait to be sent once due (default 36,000, Twilio's `ValidityPeriod`).
    pub validity_s: Option<i64>,
    /// For free-form content: the template to send instead when the contact's 24-hour window
    /// is closed.
    pub fallback: Option<Fallback>,
    /// Send even to a suppressed recipient (one whose number Twilio refused for good).
    pub force: bool,
}
