//! The Message resource: what the emulator stores, and the exact JSON shape Twilio returns for
//! it (`api.v2010.account.message`), plus SID, date and address helpers.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// The API version every URI and callback carries.
pub const API_VERSION: &str = "2010-04-01";

/// Message status, as Twilio spells it (`message_enum_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created with a Messaging Service; the service is choosing a sender.
    Accepted,
    /// Created; waiting to be sent.
    Queued,
    /// Handed to WhatsApp.
    Sent,
    /// Could not be sent.
    Failed,
    /// Delivered to the handset.
    Delivered,
    /// Sent but not delivered.
    Undelivered,
    /// Read by the recipient.
    Read,
    /// Inbound message received.
    Received,
    /// Canceled before it was sent.
    Canceled,
}

impl Status {
    /// The wire name (`queued`, `sent`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Read => "read",
            Self::Received => "received",
            Self::Canceled => "canceled",
        }
    }

    /// No further change happens after this status.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Failed | Self::Undelivered | Self::Read | Self::Received | Self::Canceled)
    }
}

/// Message direction (`message_enum_direction`; the emulator uses two of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    OutboundApi,
    Inbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::OutboundApi => "outbound-api",
            Self::Inbound => "inbound",
        }
    }
}

/// A stored message. Cloned out of the store as a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub sid: String,
    pub account_sid: String,
    pub from: Option<String>,
    pub to: String,
    pub body: String,
    pub num_media: usize,
    pub messaging_service_sid: String,
    pub status: Status,
    pub direction: Direction,
    pub error_code: Option<u32>,
    pub error_message: Option<String>,
    pub date_created: OffsetDateTime,
    pub date_updated: OffsetDateTime,
    pub date_sent: Option<OffsetDateTime>,
    pub status_callback: Option<String>,
    /// The `ValidityPeriod` it was created with (not part of Twilio's resource).
    pub validity_period: Option<u32>,
    /// The sender a Messaging Service "picks" when the message leaves `accepted`.
    pub pending_from: Option<String>,
}

/// Twilio's JSON for one message, fields in Twilio's order.
#[derive(Debug, Serialize)]
pub(crate) struct MessageJson {
    account_sid: String,
    api_version: &'static str,
    body: String,
    date_created: String,
    date_sent: Option<String>,
    date_updated: String,
    direction: &'static str,
    error_code: Option<u32>,
    error_message: Option<String>,
    from: Option<String>,
    messaging_service_sid: String,
    num_media: String,
    num_segments: String,
    price: Option<String>,
    price_unit: Option<String>,
    sid: String,
    status: &'static str,
    subresource_uris: SubresourceUris,
    to: String,
    uri: String,
}

#[derive(Debug, Serialize)]
struct SubresourceUris {
    media: String,
    feedback: String,
}

impl Message {
    /// `/2010-04-01/Accounts/AC…/Messages/SM…` without the `.json` suffix.
    fn base_path(&self) -> String {
        format!("/{API_VERSION}/Accounts/{}/Messages/{}", self.account_sid, self.sid)
    }

    /// The resource as Twilio renders it.
    pub fn to_json(&self) -> MessageJson {
        let base = self.base_path();
        MessageJson {
            account_sid: self.account_sid.clone(),
            api_version: API_VERSION,
            body: self.body.clone(),
            date_created: rfc2822(self.date_created),
            date_sent: self.date_sent.map(rfc2822),
            date_updated: rfc2822(self.date_updated),
            direction: self.direction.as_str(),
            error_code: self.error_code,
            error_message: self.error_message.clone(),
            from: self.from.clone(),
            messaging_service_sid: self.messaging_service_sid.clone(),
            num_media: self.num_media.to_string(),
            num_segments: "1".to_owned(),
            price: None,
            price_unit: None,
            sid: self.sid.clone(),
            status: self.status.as_str(),
            subresource_uris: SubresourceUris { media: format!("{base}/Media.json"), feedback: format!("{base}/Feedback.json") },
            to: self.to.clone(),
            uri: format!("{base}.json"),
        }
    }
}

/// `Mon, 29 Nov 2021 22:40:10 +0000`.
pub(crate) fn rfc2822(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc2822).unwrap_or_default()
}

/// The current time, whole seconds (Twilio's dates have no fraction).
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// `prefix` + 32 random lowercase hex digits.
pub(crate) fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The E.164 part of an address: `whatsapp:+14155550100` → `+14155550100`, if it is one.
pub fn parse_e164(address: &str) -> Option<&str> {
    let number = strip_channel(address);
    let digits = number.strip_prefix('+')?;
    let ok = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    ok.then_some(number)
}

/// Removes a `whatsapp:` channel prefix (any case) if present.
pub fn strip_channel(address: &str) -> &str {
    let trimmed = address.trim();
    match trimmed.get(..9) {
        Some(prefix) if prefix.eq_ignore_ascii_case("whatsapp:") => &trimmed[9..],
        _ => trimmed,
    }
}

/// The address is on the WhatsApp channel.
pub(crate) fn is_whatsapp(address: &str) -> bool {
    address.trim().get(..9).is_some_and(|p| p.eq_ignore_ascii_case("whatsapp:"))
}

/// The key behaviours, windows and counters use for an address: E.164 when it parses, else the
/// trimmed address without its channel prefix.
pub(crate) fn recipient_key(address: &str) -> String {
    strip_channel(address).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_2822_with_plus_zero() {
        let at = time::macros::datetime!(2021-11-29 22:40:10 UTC);
        assert_eq!(rfc2822(at), "Mon, 29 Nov 2021 22:40:10 +0000");
    }

    #[test]
    fn sids_are_prefix_and_32_lowercase_hex() {
        let sid = new_sid("SM");
        assert_eq!(sid.len(), 34);
        assert!(sid[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn e164_accepts_whatsapp_prefix_and_rejects_junk() {
        assert_eq!(parse_e164("whatsapp:+14155550100"), Some("+14155550100"));
        assert_eq!(parse_e164("+14155550100"), Some("+14155550100"));
        assert_eq!(parse_e164("14155550100"), None);
        assert_eq!(parse_e164("+1415abc"), None);
        assert_eq!(parse_e164("+0123456789"), None);
    }
}
