//! What the client sends: the body of `POST /send` and the key of a delivery-status lookup.

use serde::Serialize;
use serde_json::Value;

/// The body of `POST /send` as it goes on the wire (the server's [`SendMessageRequest`] reads
/// it). Absent fields are left out, so that the API reports a missing field as missing.
///
/// [`SendMessageRequest`]: crate::http::dto::SendMessageRequest
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SendRequest {
    /// Recipient, E.164, with or without `whatsapp:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Free-form text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Media URLs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub media_urls: Vec<String>,
    /// Content Template SID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    /// Template variables: a JSON object, or that object as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_variables: Option<Value>,
    /// Queue priority, 1 (highest) … 10 (a number; anything else is sent as given, for the API
    /// to name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Value>,
    /// RFC 3339 time before which the message is not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
    /// The application's own id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A JSON object kept with the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// `queue` (the API's default) or `immediate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Seconds it may wait to be sent once due (1 … 36000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validity_s: Option<i64>,
    /// The template to send instead of free-form content outside the 24-hour window:
    /// `{"content_sid": "HX…", "content_variables": {…}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Value>,
    /// Send even to a suppressed recipient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// Which message a delivery-status lookup is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The gateway's id (the API checks it is a UUID).
    Id(String),
    /// Twilio's message SID.
    Sid(String),
}
