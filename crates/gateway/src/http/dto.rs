//! Request and response bodies, and the conversion of a send request into domain types (every
//! field checked, every problem reported at once, before any I/O).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::message::{MAX_BODY_CHARS, MAX_MEDIA};
use crate::domain::status::UnixMillis;
use crate::domain::{Content, Direction, MessageId, MessageStatus, NewOutboundMessage, PhoneNumber, Priority};
use crate::error::{ApiError, FieldError};
use crate::service::SendMode;
use crate::store::{AttemptRecord, MessageRecord, StatusLogEntry};

/// RFC 3339 in UTC with exactly three fractional digits, so that times also sort as text.
const RFC3339_MILLIS: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-01-31T09:30:00.250Z`).
pub fn rfc3339(ms: UnixMillis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(RFC3339_MILLIS).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_rfc3339(field: &str, value: &str) -> Result<UnixMillis, FieldError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| FieldError::new(field, format!("must be an RFC 3339 time such as 2026-01-31T09:30:00Z, got {value:?}")))
}

/// `POST /api/v1/whatsapp/send`: one message, either free-form (`body` and/or `media_urls`) or a
/// template (`content_sid`, optionally with `content_variables`). Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "whatsapp:+14155550123", "body": "Your order is on its way", "reference": "order-42"}))]
pub struct SendMessageRequest {
    /// Recipient, E.164, with or without `whatsapp:`.
    #[schema(example = "whatsapp:+14155550123")]
    pub to: String,
    /// Free-form text (at most 1600 characters, not blank, no control characters other than newline,
    /// carriage return and tab). Required unless `media_urls` or `content_sid` is given; free-form
    /// content is only delivered within 24 hours of the user's last message.
    #[serde(default)]
    #[schema(max_length = 1600, example = "Your order is on its way")]
    pub body: Option<String>,
    /// Media URLs: absolute http(s) URLs of at most 2048 characters, at most 10 of them.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub media_urls: Option<Vec<String>>,
    /// Content Template SID (`HX` followed by 32 hex digits); cannot be combined with `body` or
    /// `media_urls`. A template may be sent at any time.
    #[serde(default)]
    #[schema(pattern = "^HX[0-9a-fA-F]{32}$")]
    pub content_sid: Option<String>,
    /// Template variables: a JSON object such as `{"1": "Ada"}`, or that object as a string.
    /// Requires `content_sid`.
    #[serde(default)]
    #[schema(value_type = Option<Value>, example = json!({"1": "Ada"}))]
    pub content_variables: Option<serde_json::Value>,
    /// Queue priority: 1 (highest) … 10; default 5.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10, default = 5)]
    pub priority: Option<i64>,
    /// RFC 3339 time before which the message is not sent (at most a year ahead).
    #[serde(default)]
    #[schema(format = DateTime, example = "2026-01-31T09:30:00Z")]
    pub send_at: Option<String>,
    /// The application's own id (1 to 255 characters without control characters), e.g. an order or
    /// user id; the list endpoint filters on it.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, example = "order-42")]
    pub reference: Option<String>,
    /// Free JSON object kept with the message (at most 16 KiB).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// `queue` (default: stored and queued, answered 202) or `immediate` (sent to Twilio within the
    /// call, answered 201).
    #[serde(default)]
    #[schema(value_type = Option<SendModeName>)]
    pub mode: Option<String>,
}

/// The values of [`SendMessageRequest::mode`], for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SendMode, description = "How to send: `queue` (the default) stores and queues the message and answers 202; \
    `immediate` sends it to Twilio within the call and answers 201.")]
pub enum SendModeName {
    /// Store and queue the message; the call answers 202.
    Queue,
    /// Send it to Twilio within the call; the call answers 201.
    Immediate,
}

/// The values of the `granularity` of delivery metrics, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Granularity, description = "Bucket size of delivery metrics: `hour` (the default) or `day`.")]
pub enum GranularityName {
    /// One bucket per hour (the default).
    Hour,
    /// One bucket per day.
    Day,
}

fn has_control_chars(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

fn check_body(body: &str, errors: &mut Vec<FieldError>) {
    let chars = body.chars().count();
    if body.trim().is_empty() {
        errors.push(FieldError::new("body", "must not be empty or only whitespace"));
    } else if chars > MAX_BODY_CHARS {
        errors.push(FieldError::new("body", format!("is {chars} characters long; WhatsApp messages hold at most {MAX_BODY_CHARS}")));
    } else if has_control_chars(body) {
        errors.push(FieldError::new("body", "contains control characters (only newline, carriage return and tab are allowed)"));
    }
}

fn check_media(urls: &[String], errors: &mut Vec<FieldError>) {
    if urls.len() > MAX_MEDIA {
        errors.push(FieldError::new("media_urls", format!("has {} entries; at most {MAX_MEDIA} are allowed", urls.len())));
        return;
    }
    for (i, url) in urls.iter().enumerate() {
        let lower = url.to_ascii_lowercase();
        let ok =
            (lower.starts_with("https://") || lower.starts_with("http://")) && url.len() <= 2048 && !url.chars().any(char::is_whitespace);
        if !ok {
            errors.push(FieldError::new(
                format!("media_urls[{i}]"),
                "must be an absolute http(s) URL of at most 2048 characters without spaces",
            ));
        }
    }
}

fn template_variables(value: &serde_json::Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let object = match value {
        serde_json::Value::String(text) => serde_json::from_str::<serde_json::Value>(text).ok().filter(|v| v.is_object()),
        other => Some(other.clone()).filter(|v| v.is_object()),
    };
    match object {
        Some(obj) => Some(obj.to_string()),
        None => {
            errors
                .push(FieldError::new("content_variables", "must be a JSON object such as {\"1\": \"Ada\"} (or that object as a string)"));
            None
        }
    }
}

impl SendMessageRequest {
    /// Checks every field and builds the domain message; all problems are reported together.
    pub fn into_domain(self, now: UnixMillis) -> Result<(NewOutboundMessage, SendMode), ApiError> {
        let mut errors = Vec::new();
        let to = PhoneNumber::parse(&self.to).map_err(|e| errors.push(FieldError::new("to", e.to_string()))).ok();
        let media_urls = self.media_urls.unwrap_or_default();
        let content = match (self.content_sid, &self.body, media_urls.is_empty()) {
            (Some(sid), None, true) => {
                if !(sid.len() == 34 && sid.starts_with("HX") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
                    errors.push(FieldError::new("content_sid", "must be a Content Template SID: HX followed by 32 hex digits"));
                }
                let content_variables = self.content_variables.as_ref().and_then(|v| template_variables(v, &mut errors));
                Some(Content::Template { content_sid: sid, content_variables })
            }
            (Some(_), _, _) => {
                errors.push(FieldError::new(
                    "content_sid",
                    "cannot be combined with `body` or `media_urls`: a template carries its own content",
                ));
                None
            }
            (None, None, true) => {
                errors.push(FieldError::new("body", "is required unless `media_urls` or `content_sid` is given"));
                None
            }
            (None, body, _) => {
                if let Some(body) = body {
                    check_body(body, &mut errors);
                }
                check_media(&media_urls, &mut errors);
                if self.content_variables.is_some() {
                    errors.push(FieldError::new("content_variables", "requires `content_sid`"));
                }
                Some(Content::FreeForm { body: body.clone(), media_urls })
            }
        };
        let priority = match self.priority {
            None => Priority::DEFAULT,
            Some(p) => Priority::new(p).unwrap_or_else(|e| {
                errors.push(FieldError::new("priority", e.to_string()));
                Priority::DEFAULT
            }),
        };
        let send_at = self.send_at.as_deref().and_then(|s| parse_rfc3339("send_at", s).map_err(|e| errors.push(e)).ok());
        if send_at.is_some_and(|at| at > now + 365 * 86_400_000) {
            errors.push(FieldError::new("send_at", "is more than a year ahead"));
        }
        if let Some(reference) = &self.reference
            && (reference.is_empty() || reference.chars().count() > 255 || has_control_chars(reference))
        {
            errors.push(FieldError::new("reference", "must be 1 to 255 characters without control characters"));
        }
        if let Some(metadata) = &self.metadata {
            if !metadata.is_object() {
                errors.push(FieldError::new("metadata", "must be a JSON object"));
            } else if metadata.to_string().len() > 16 * 1024 {
                errors.push(FieldError::new("metadata", "is larger than 16 KiB"));
            }
        }
        let mode = match self.mode.as_deref() {
            None | Some("queue") => SendMode::Queue,
            Some("immediate") => SendMode::Immediate,
            Some(other) => {
                errors.push(FieldError::new("mode", format!("must be `queue` or `immediate`, got {other:?}")));
                SendMode::Queue
            }
        };
        match (to, content) {
            (Some(to), Some(content)) if errors.is_empty() => Ok((
                NewOutboundMessage {
                    id: MessageId::new(),
                    to,
                    content,
                    priority,
                    send_at,
                    reference: self.reference,
                    metadata: self.metadata,
                    idempotency_key: None,
                },
                mode,
            )),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// A message as the API shows it. Every field is always present (`null` when unknown); times are
/// RFC 3339 UTC.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageResource {
    /// The gateway's id for the message (a UUIDv7).
    id: MessageId,
    /// Twilio's message SID (`SM…` / `MM…`), once Twilio has accepted the message.
    #[schema(example = "SMd5cfa9e002d043c18defc777668b08c1")]
    message_sid: Option<String>,
    /// Sent by the gateway, or received from a user.
    direction: Direction,
    /// The sender, E.164.
    #[schema(example = "+14155238886")]
    from: String,
    /// The recipient, E.164.
    #[schema(example = "+14155550123")]
    to: String,
    /// The text, if any.
    body: Option<String>,
    /// Media URLs (empty when none).
    media_urls: Vec<String>,
    /// The Content Template SID, for a template message.
    content_sid: Option<String>,
    /// The current status.
    status: MessageStatus,
    /// Twilio's error code (e.g. 63016), if the message failed or went undelivered.
    error_code: Option<i64>,
    /// A description of the error, if any.
    error_message: Option<String>,
    /// Queue priority, 1 (highest) … 10.
    #[schema(minimum = 1, maximum = 10)]
    priority: i64,
    /// Send attempts made so far.
    attempts: i64,
    /// The application's own id, as given when sending.
    reference: Option<String>,
    /// The JSON object given when sending.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// When the next send attempt is due (only while the message waits to be sent or retried).
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    /// When the gateway stored the message.
    #[schema(format = DateTime)]
    created_at: String,
    /// When Twilio accepted it.
    #[schema(format = DateTime)]
    queued_at: Option<String>,
    /// When WhatsApp accepted it.
    #[schema(format = DateTime)]
    sent_at: Option<String>,
    /// When it reached the recipient's phone.
    #[schema(format = DateTime)]
    delivered_at: Option<String>,
    /// When the recipient read it.
    #[schema(format = DateTime)]
    read_at: Option<String>,
    /// When it failed or went undelivered.
    #[schema(format = DateTime)]
    failed_at: Option<String>,
    /// When its status last changed.
    #[schema(format = DateTime)]
    last_status_at: String,
}

impl From<MessageRecord> for MessageResource {
    fn from(m: MessageRecord) -> Self {
        let l = &m.lifecycle;
        let sendable = l.status.is_sendable();
        Self {
            id: m.id,
            message_sid: m.message_sid,
            direction: m.direction,
            from: m.from,
            to: m.to,
            body: m.body,
            media_urls: m.media_urls,
            content_sid: m.content_sid,
            status: l.status,
            error_code: l.error_code.or(m.error_code),
            error_message: m.error_message,
            priority: m.priority,
            attempts: m.attempts,
            reference: m.reference,
            metadata: m.metadata.and_then(|text| serde_json::from_str(&text).ok()),
            next_attempt_at: m.next_attempt_at.filter(|_| sendable).map(rfc3339),
            created_at: rfc3339(m.created_at),
            queued_at: l.queued_at.map(rfc3339),
            sent_at: l.sent_at.map(rfc3339),
            delivered_at: l.delivered_at.map(rfc3339),
            read_at: l.read_at.map(rfc3339),
            failed_at: l.failed_at.map(rfc3339),
            last_status_at: rfc3339(l.last_status_at),
        }
    }
}

/// One entry of the status history: every status report received, applied or not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The status before this report.
    previous_status: Option<MessageStatus>,
    /// The status reported.
    status: MessageStatus,
    /// Whether the report changed the message (a late or duplicate report does not).
    applied: bool,
    /// Twilio's error code carried by the report, if any.
    error_code: Option<i64>,
    /// Where the report came from: `worker` (Twilio's answer to a send), `callback` (a Twilio status
    /// callback) or `reconcile` (Twilio asked after an answer was lost).
    #[schema(example = "callback")]
    source: String,
    /// Further detail, if any.
    detail: Option<String>,
    /// When the report was received.
    #[schema(format = DateTime)]
    at: String,
}

impl From<StatusLogEntry> for HistoryEntry {
    fn from(e: StatusLogEntry) -> Self {
        Self {
            previous_status: e.previous_status,
            status: e.new_status,
            applied: e.applied,
            error_code: e.error_code,
            source: e.source,
            detail: e.detail,
            at: rfc3339(e.occurred_at),
        }
    }
}

/// One send attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptResource {
    /// The attempt's number, from 1.
    attempt: i64,
    /// How it ended: `in_flight`, `accepted`, `retryable`, `unknown`, `permanent`, `reconciled` or
    /// `lost`.
    #[schema(example = "accepted")]
    outcome: String,
    /// When it started.
    #[schema(format = DateTime)]
    started_at: String,
    /// When it ended.
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    /// The HTTP status Twilio answered, if it answered.
    http_status: Option<i64>,
    /// Twilio's error code, if any.
    error_code: Option<i64>,
    /// The error, if any.
    error_message: Option<String>,
    /// The SID Twilio gave the message, if it accepted it.
    message_sid: Option<String>,
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryStatus {
    /// Every field of the message resource, at the top level.
    #[serde(flatten)]
    pub(super) message: MessageResource,
    /// Every status report, oldest first.
    pub(super) history: Vec<HistoryEntry>,
    /// Every send attempt, oldest first.
    pub(super) send_attempts: Vec<AttemptResource>,
}
