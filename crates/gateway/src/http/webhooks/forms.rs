//! The forms Twilio posts, as the handlers read them and as the OpenAPI document shows them:
//! one type each, so the document cannot describe what the parser does not read. Twilio adds
//! parameters without notice; every one received is covered by the signature, and the ones not
//! named here are kept aside (incoming messages) or ignored (status callbacks).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::domain::MessageSid;

/// A count or code: up to 9 ASCII digits (the document's `^[0-9]{0,9}$`); an empty parameter
/// (`ErrorCode=`) means none.
fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(deserializer)?.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) if text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().map(Some).map_err(|e| serde::de::Error::custom(format!("is not a number: {text:?} ({e})")))
        }
        Some(text) => Err(serde::de::Error::custom(format!("must be up to 9 digits (or empty), got {text:?}"))),
    }
}

/// The form Twilio posts to the status callback (`application/x-www-form-urlencoded`). The
/// gateway's own message id travels in the callback URL's `mid` query parameter.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct StatusCallbackForm {
    /// The message's SID.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(SM|MM)[0-9a-fA-F]{32}$", example = "SMd5cfa9e002d043c18defc777668b08c1")]
    pub message_sid: Option<MessageSid>,
    /// The same SID again, under its old name (Twilio still sends it; not read, but it must be a SID).
    #[serde(default)]
    #[schema(value_type = String, pattern = "^(SM|MM)[0-9a-fA-F]{32}$")]
    pub sms_sid: Option<MessageSid>,
    /// The new status: `queued`, `sending`, `sent`, `delivered`, `read`, `undelivered` or `failed`.
    /// Other values (`accepted`, `scheduled`, `canceled`, …) are acknowledged and ignored.
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "delivered")]
    pub message_status: Option<String>,
    /// The same status again, under its old name (Twilio still sends it; not read).
    #[serde(default)]
    #[schema(value_type = String)]
    pub sms_status: Option<String>,
    /// Twilio's error code, on `failed` / `undelivered` (up to 9 digits; empty means none).
    #[serde(default, deserialize_with = "empty_is_none")]
    #[schema(value_type = String, pattern = "^[0-9]{0,9}$", example = "63016")]
    pub error_code: Option<i64>,
    /// The channel's error message, on failure.
    #[serde(default)]
    pub channel_status_message: Option<String>,
    /// `READ` (or `DELIVERED`, `UNDELIVERED`) on WhatsApp receipts.
    #[serde(default)]
    pub event_type: Option<String>,
    /// The Twilio account.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// The sender, `whatsapp:+…`.
    #[serde(default)]
    pub from: Option<String>,
    /// The recipient, `whatsapp:+…`.
    #[serde(default)]
    pub to: Option<String>,
    /// `2010-04-01`.
    #[serde(default)]
    pub api_version: Option<String>,
}

/// The form Twilio posts for an incoming WhatsApp message (`application/x-www-form-urlencoded`).
/// `STOP` and `START` bodies change the contact's opt-out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IncomingMessageForm {
    /// The message's SID. A SID seen before is acknowledged without being stored again.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(SM|MM)[0-9a-fA-F]{32}$", example = "SM159065a79b093b598ee3486a9eb20394")]
    pub message_sid: Option<MessageSid>,
    /// The same SID again, under its old name (Twilio still sends it; not read, but it must be a SID).
    #[serde(default)]
    #[schema(value_type = String, pattern = "^(SM|MM)[0-9a-fA-F]{32}$")]
    pub sms_message_sid: Option<MessageSid>,
    /// The user, `whatsapp:+…`: `+` and 7 to 15 digits (kept even if the numbering plan does not
    /// know it yet).
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(whatsapp:)?\\+[0-9]{7,15}$", example = "whatsapp:+14155550123")]
    pub from: Option<String>,
    /// The business number, `whatsapp:+…`, as `From`.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(whatsapp:)?\\+[0-9]{7,15}$", example = "whatsapp:+14155238886")]
    pub to: Option<String>,
    /// The text.
    #[serde(default)]
    pub body: Option<String>,
    /// How many `MediaUrl{N}` parameters follow (up to 9 digits; at most 10 are kept).
    #[serde(default, deserialize_with = "empty_is_none")]
    #[schema(value_type = String, pattern = "^[0-9]{0,9}$", example = "0")]
    pub num_media: Option<usize>,
    /// The user's WhatsApp profile name.
    #[serde(default)]
    pub profile_name: Option<String>,
    /// The user's WhatsApp id (the number without `+`).
    #[serde(default)]
    pub wa_id: Option<String>,
    /// The Twilio account.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// Every other parameter: `MediaUrl0` … `MediaUrl9`, `MediaContentType0` …, and whatever
    /// Twilio adds.
    #[serde(flatten)]
    #[schema(ignore)]
    pub others: BTreeMap<String, String>,
}
