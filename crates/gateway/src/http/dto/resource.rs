//! What the API answers: the message resource, its history and its attempts.

use serde::{Deserialize, Serialize};

use super::time::rfc3339;
use crate::domain::{AttemptOutcome, Direction, MessageId, MessageSid, MessageStatus, StatusSource};
use crate::service::DeliveryStatus;
use crate::store::{AttemptRecord, MessageRecord, StatusLogEntry};

/// A message as the API shows it. Every field is always present (`null` when unknown); times are
/// RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageResource {
    /// The gateway's id for the message (a UUIDv7).
    pub id: MessageId,
    /// Twilio's message SID (`SM…` / `MM…`), once Twilio has accepted the message.
    #[schema(value_type = Option<String>, example = "SMd5cfa9e002d043c18defc777668b08c1")]
    pub message_sid: Option<MessageSid>,
    /// Sent by the gateway, or received from a user.
    pub direction: Direction,
    /// The sender: for an outbound message the number it went out from (E.164) or the Messaging
    /// Service it went through (`MG…`); for an inbound one the contact.
    #[schema(example = "+14155238886")]
    pub from: String,
    /// The recipient, E.164.
    #[schema(example = "+14155550123")]
    pub to: String,
    /// The text, if any.
    pub body: Option<String>,
    /// Media URLs (empty when none).
    pub media_urls: Vec<String>,
    /// The Content Template SID, for a template message (also for free-form content sent as its
    /// fallback template: the contact's 24-hour window was closed).
    pub content_sid: Option<String>,
    /// The fallback template given with free-form content, if any.
    #[serde(default)]
    pub fallback_content_sid: Option<String>,
    /// The current status.
    pub status: MessageStatus,
    /// Twilio's error code (e.g. 63016), if the message failed or went undelivered.
    pub error_code: Option<i64>,
    /// A description of the error, if any.
    pub error_message: Option<String>,
    /// Queue priority, 1 (highest) … 10.
    #[schema(minimum = 1, maximum = 10)]
    pub priority: i64,
    /// Send attempts made so far.
    pub attempts: i64,
    /// The application's own id, as given when sending.
    pub reference: Option<String>,
    /// The JSON object given when sending.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// When the next send attempt is due (only while the message waits to be sent or retried).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// Seconds it may wait to be sent once due, as given when sending (outbound; default 36000).
    pub validity_s: Option<i64>,
    /// When it ends `expired` unless sent by then (only while it waits to be sent or retried).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// When the gateway stored the message.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When Twilio accepted it.
    #[schema(format = DateTime)]
    pub queued_at: Option<String>,
    /// When WhatsApp accepted it.
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    /// When it reached the recipient's phone.
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// When the recipient read it.
    #[schema(format = DateTime)]
    pub read_at: Option<String>,
    /// When it failed or went undelivered.
    #[schema(format = DateTime)]
    pub failed_at: Option<String>,
    /// When its status last changed.
    #[schema(format = DateTime)]
    pub last_status_at: String,
    /// What an incoming message carried beyond text: media types, a button or list reply, a
    /// location, a click-to-WhatsApp referral (`null` when nothing).
    #[serde(default)]
    pub details: Option<crate::domain::InboundDetails>,
    /// How many events the message has had (`message.status_changed` and the others); each
    /// event carries its number as `sequence`.
    #[serde(default)]
    pub event_sequence: i64,
}

impl From<MessageRecord> for MessageResource {
    fn from(m: MessageRecord) -> Self {
        let l = &m.lifecycle;
        let sendable = l.status.is_sendable();
        Self {
            id: m.id,
            message_sid: m.message_sid,
            direction: m.direction,
            from: m.from.as_str().to_owned(),
            to: m.to.as_e164().to_owned(),
            body: m.body,
            media_urls: m.media_urls,
            content_sid: m.content_sid,
            fallback_content_sid: m.fallback_content_sid,
            status: l.status,
            error_code: l.error_code,
            error_message: m.error_message,
            priority: m.priority.get(),
            attempts: m.attempts,
            reference: m.reference,
            metadata: m.metadata.and_then(|text| serde_json::from_str(&text).ok()),
            next_attempt_at: m.next_attempt_at.filter(|_| sendable).map(rfc3339),
            validity_s: (m.direction == Direction::Outbound).then_some(m.validity_s),
            expires_at: m.expires_at.filter(|_| sendable).map(rfc3339),
            created_at: rfc3339(m.created_at),
            queued_at: l.queued_at.map(rfc3339),
            sent_at: l.sent_at.map(rfc3339),
            delivered_at: l.delivered_at.map(rfc3339),
            read_at: l.read_at.map(rfc3339),
            failed_at: l.failed_at.map(rfc3339),
            last_status_at: rfc3339(l.last_status_at),
            details: m.details.as_deref().map(|d| crate::domain::InboundDetails::from_column(Some(d))),
            event_sequence: m.event_seq,
        }
    }
}

/// One entry of the status history: every status report received, applied or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// The status before this report.
    pub previous_status: Option<MessageStatus>,
    /// The status reported.
    pub status: MessageStatus,
    /// Whether the report changed the message (a late or duplicate report does not).
    pub applied: bool,
    /// Twilio's error code carried by the report, if any.
    pub error_code: Option<i64>,
    /// Where the report came from: `api` (the message was stored), `worker` (Twilio's answer to a
    /// send), `callback` (a Twilio status callback), `reconcile` (Twilio asked after an answer
    /// was lost) or `poll` (Twilio asked about a message whose callbacks stopped coming).
    pub source: StatusSource,
    /// Further detail, if any.
    pub detail: Option<String>,
    /// When the report was received.
    #[schema(format = DateTime)]
    pub at: String,
}

impl From<StatusLogEntry> for HistoryEntry {
    fn from(e: StatusLogEntry) -> Self {
        Self {
            previous_status: e.previous_status,
            status: e.new_status,
            applied: e.applied.0,
            error_code: e.error_code,
            source: e.source,
            detail: e.detail,
            at: rfc3339(e.occurred_at),
        }
    }
}

/// One send attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptResource {
    /// The attempt's number, from 1.
    pub attempt: i64,
    /// How it ended: `in_flight`, `accepted`, `retryable`, `unknown`, `permanent`, `reconciled` or
    /// `lost`.
    pub outcome: AttemptOutcome,
    /// When it started.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it ended.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The HTTP status Twilio answered, if it answered.
    pub http_status: Option<i64>,
    /// Twilio's error code, if any.
    pub error_code: Option<i64>,
    /// The error, if any.
    pub error_message: Option<String>,
    /// The SID Twilio gave the message, if it accepted it.
    #[schema(value_type = Option<String>)]
    pub message_sid: Option<MessageSid>,
}

impl From<AttemptRecord> for AttemptResource {
    fn from(a: AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            outcome: a.outcome,
            started_at: rfc3339(a.started_at),
            finished_at: a.finished_at.map(rfc3339),
            http_status: a.http_status,
            error_code: a.error_code,
            error_message: a.error_message,
            message_sid: a.message_sid,
        }
    }
}

/// `GET /delivery-status`: the message, its history and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DeliveryStatus)]
pub struct DeliveryStatusView {
    /// Every field of the message resource, at the top level.
    #[serde(flatten)]
    pub message: MessageResource,
    /// Every status report, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Every send attempt, oldest first.
    pub send_attempts: Vec<AttemptResource>,
}

impl From<DeliveryStatus> for DeliveryStatusView {
    fn from(d: DeliveryStatus) -> Self {
        Self {
            message: d.message.into(),
            history: d.history.into_iter().map(Into::into).collect(),
            send_attempts: d.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a bulk redrive did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveResult {
    /// How many dead-lettered messages were sent again.
    pub redriven: usize,
    /// Those messages as they are now (`pending`), newest first.
    pub messages: Vec<MessageResource>,
}

/// One page of messages, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagePage {
    /// The messages of this page.
    pub messages: Vec<MessageResource>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
