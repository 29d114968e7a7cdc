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

/// Formats Unix milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: UnixMillis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_rfc3339(field: &str, value: &str) -> Result<UnixMillis, FieldError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| FieldError::new(field, format!("must be an RFC 3339 time such as 2026-01-31T09:30:00Z, got {value:?}")))
}

/// `POST /api/v1/whatsapp/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// Recipient, E.164, with or without `whatsapp:`.
    pub to: String,
    /// Free-form text.
    #[serde(default)]
    pub body: Option<String>,
    /// Media URLs.
    #[serde(default)]
    pub media_urls: Option<Vec<String>>,
    /// Content Template SID (`HX…`).
    #[serde(default)]
    pub content_sid: Option<String>,
    /// Template variables: an object, or a JSON object as text.
    #[serde(default)]
    pub content_variables: Option<serde_json::Value>,
    /// 1 (highest) … 10; default 5.
    #[serde(default)]
    pub priority: Option<i64>,
    /// RFC 3339 time before which the message is not sent.
    #[serde(default)]
    pub send_at: Option<String>,
    /// The application's own id.
    #[serde(default)]
    pub reference: Option<String>,
    /// Free JSON object kept with the message.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// `queue` (default) or `immediate`.
    #[serde(default)]
    pub mode: Option<String>,
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
                },
                mode,
            )),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// A message as the API shows it.
#[derive(Debug, Serialize)]
pub struct MessageResource {
    id: MessageId,
    message_sid: Option<String>,
    direction: Direction,
    from: String,
    to: String,
    body: Option<String>,
    media_urls: Vec<String>,
    content_sid: Option<String>,
    status: MessageStatus,
    error_code: Option<i64>,
    error_message: Option<String>,
    priority: i64,
    attempts: i64,
    reference: Option<String>,
    metadata: Option<serde_json::Value>,
    next_attempt_at: Option<String>,
    created_at: String,
    queued_at: Option<String>,
    sent_at: Option<String>,
    delivered_at: Option<String>,
    read_at: Option<String>,
    failed_at: Option<String>,
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

/// One entry of the status history.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    previous_status: Option<MessageStatus>,
    status: MessageStatus,
    applied: bool,
    error_code: Option<i64>,
    source: String,
    detail: Option<String>,
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
#[derive(Debug, Serialize)]
pub struct AttemptResource {
    attempt: i64,
    outcome: String,
    started_at: String,
    finished_at: Option<String>,
    http_status: Option<i64>,
    error_code: Option<i64>,
    error_message: Option<String>,
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
#[derive(Debug, Serialize)]
pub struct DeliveryStatus {
    #[serde(flatten)]
    pub(super) message: MessageResource,
    pub(super) history: Vec<HistoryEntry>,
    pub(super) send_attempts: Vec<AttemptResource>,
}
