//! An incoming WhatsApp message, as Twilio's webhook describes it.

use serde::{Deserialize, Serialize};

use super::clock::UnixMillis;
use super::ids::MessageSid;
use super::phone::PhoneNumber;

/// An incoming WhatsApp message, parsed from Twilio's webhook.
#[derive(Debug, Clone, PartialEq)]
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
    /// What it carried beyond text and media URLs.
    pub details: InboundDetails,
}

/// What an incoming message carried beyond text and media URLs: the media's types, a quick-reply
/// button or list reply, a location, a click-to-WhatsApp ad referral, the message it replies to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InboundDetails {
    /// Twilio's `MessageType` (`text`, `image`, `button`, `interactive`, `location`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// Each attachment (`MediaUrl{N}`, `MediaContentType{N}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<Media>,
    /// A quick-reply or call-to-action button the user pressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<Button>,
    /// The item picked from a list message (`ListId`, `ListTitle`, `ListDescription`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_reply: Option<ListReply>,
    /// Another interactive answer (`InteractiveData`, JSON as Twilio sent it; a WhatsApp Flow's
    /// `FlowData` is kept the same way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<serde_json::Value>,
    /// A shared location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The click-to-WhatsApp ad the conversation started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
    /// The SID of the message this one replies to (`OriginalRepliedMessageSid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replied_to_sid: Option<String>,
    /// Forwarded (`Forwarded`), or frequently forwarded (`FrequentlyForwarded`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// Frequently forwarded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frequently_forwarded: bool,
}

/// One attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Media {
    /// Where Twilio keeps it (fetching it takes the account's credentials).
    pub url: String,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A button the user pressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Button {
    /// Its label (`ButtonText`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The payload the template gave it (`ButtonPayload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// `REPLY` or `ACTION` (`ButtonType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The item a user picked from a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListReply {
    /// The item's id, as the list gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A shared location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Its address, if the user picked a place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The place's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A click-to-WhatsApp ad referral (`Referral*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Referral {
    /// `ReferralSourceUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// `ReferralSourceId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `ReferralSourceType` (`ad`, `post`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// `ReferralHeadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// `ReferralBody`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `ReferralMediaUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// `ReferralMediaContentType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_content_type: Option<String>,
    /// `ReferralCtwaClid`: the click's id, for attributing the conversation to the ad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
}

impl InboundDetails {
    /// As stored: JSON, or NULL when there is nothing beyond text.
    pub fn to_column(&self) -> Option<String> {
        (*self != Self::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// From the stored column.
    pub fn from_column(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
    }
}
