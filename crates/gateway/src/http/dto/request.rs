//! The send request, and its conversion into domain types: every field checked, every problem
//! reported at once, before any I/O.

use serde::{Deserialize, Serialize};

use super::time::parse_rfc3339;
use crate::domain::message::{MAX_BODY_CHARS, MAX_MEDIA};
use crate::domain::{Content, Fallback, MAX_VALIDITY_S, MessageId, NewOutboundMessage, Origin, PhoneNumber, Priority};
use crate::http::problem::{ApiError, FieldError};
use crate::service::SendMode;

/// `POST /api/v1/whatsapp/send`: one message, either free-form (`body` and/or `media_urls`) or a
/// template (`content_sid`, optionally with `content_variables`). Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "whatsapp:+14155550123", "body": "Your order is on its way", "reference": "order-42"}))]
pub struct SendMessageRequest {
    /// Recipient, E.164, with or without `whatsapp:`.
    #[schema(example = "whatsapp:+14155550123")]
    pub to: String,
    /// The sender: one of the gateway's WhatsApp numbers (E.164, with or without `whatsapp:`)
    /// or its Messaging Service SID (`MG…`). Default: the Messaging Service when one is
    /// configured, else the number the recipient last dealt with, else one picked for it.
    #[serde(default)]
    #[schema(example = "whatsapp:+14155238886")]
    pub from: Option<String>,
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
    #[serde(default, deserialize_with = "super::number::optional_integer")]
    #[schema(minimum = 1, maximum = 10, default = 5)]
    pub priority: Option<i64>,
    /// RFC 3339 time before which the message is not sent (a time in the past means now).
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
    /// Seconds the message may wait to be sent, counted from when it is due (`send_at`, or now):
    /// 1 … 36000, default 36000 (Twilio's). What is left of it goes to Twilio as
    /// `ValidityPeriod`; a message not sent in time ends `expired`.
    #[serde(default, deserialize_with = "super::number::optional_integer")]
    #[schema(minimum = 1, maximum = 36000, default = 36000)]
    pub validity_s: Option<i64>,
    /// For free-form content: the approved template to send instead when the contact has not
    /// written in the last 24 hours (WhatsApp's customer service window). Without it, such a
    /// message is refused with a 422 (unless the gateway runs with `WHATSAPP_WINDOW_CHECK=false`).
    #[serde(default)]
    pub fallback: Option<FallbackTemplate>,
    /// Send even if the recipient is suppressed (Twilio refused its number for good with 63024,
    /// 21211 or 21614): without it, such a send is refused with a 422. Default false.
    #[serde(default)]
    #[schema(default = false)]
    pub force: Option<bool>,
}

/// A template to send when free-form content cannot be (the 24-hour window is closed).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": {"1": "Ada"}}))]
pub struct FallbackTemplate {
    /// Content Template SID (`HX` followed by 32 hex digits).
    #[schema(pattern = "^HX[0-9a-fA-F]{32}$")]
    pub content_sid: String,
    /// Template variables: a JSON object such as `{"1": "Ada"}`, or that object as a string.
    #[serde(default)]
    #[schema(value_type = Option<Value>, example = json!({"1": "Ada"}))]
    pub content_variables: Option<serde_json::Value>,
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
        let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
            && url.chars().count() <= 2048
            && !url.chars().any(char::is_whitespace);
        if !ok {
            errors.push(FieldError::new(
                format!("media_urls[{i}]"),
                "must be an absolute http(s) URL of at most 2048 characters without spaces",
            ));
        }
    }
}

fn is_template_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("HX") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn template_variables(field: &str, value: &serde_json::Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let object = match value {
        serde_json::Value::String(text) => serde_json::from_str::<serde_json::Value>(text).ok().filter(|v| v.is_object()),
        other => Some(other.clone()).filter(|v| v.is_object()),
    };
    match object {
        Some(obj) => Some(obj.to_string()),
        None => {
            errors.push(FieldError::new(field, "must be a JSON object such as {\"1\": \"Ada\"} (or that object as a string)"));
            None
        }
    }
}

impl SendMessageRequest {
    /// Checks every field and builds the domain message; all problems are reported together.
    pub fn into_domain(self) -> Result<(NewOutboundMessage, SendMode), ApiError> {
        let mut errors = Vec::new();
        let to = PhoneNumber::parse_exact(&self.to).map_err(|e| errors.push(FieldError::new("to", e.to_string()))).ok();
        let from =
            self.from.as_deref().and_then(|f| Origin::parse(f).map_err(|e| errors.push(FieldError::new("from", e.to_string()))).ok());
        let media_urls = self.media_urls.unwrap_or_default();
        let content = match (self.content_sid, &self.body, media_urls.is_empty()) {
            (Some(sid), None, true) => {
                if !is_template_sid(&sid) {
                    errors.push(FieldError::new("content_sid", "must be a Content Template SID: HX followed by 32 hex digits"));
                }
                let content_variables =
                    self.content_variables.as_ref().and_then(|v| template_variables("content_variables", v, &mut errors));
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
        let validity_s = match self.validity_s {
            None => None,
            Some(v) if (1..=MAX_VALIDITY_S).contains(&v) => Some(v),
            Some(v) => {
                errors.push(FieldError::new("validity_s", format!("must be from 1 to {MAX_VALIDITY_S} seconds, got {v}")));
                None
            }
        };
        let fallback = self.fallback.map(|fallback| {
            if !matches!(content, Some(Content::FreeForm { .. }) | None) {
                errors.push(FieldError::new("fallback", "only free-form content has a fallback: a template may be sent at any time"));
            }
            if !is_template_sid(&fallback.content_sid) {
                errors.push(FieldError::new("fallback.content_sid", "must be a Content Template SID: HX followed by 32 hex digits"));
            }
            let content_variables =
                fallback.content_variables.as_ref().and_then(|v| template_variables("fallback.content_variables", v, &mut errors));
            Fallback { content_sid: fallback.content_sid, content_variables }
        });
        match (to, content) {
            (Some(to), Some(content)) if errors.is_empty() => Ok((
                NewOutboundMessage {
                    id: MessageId::new(),
                    to,
                    from,
                    content,
                    priority,
                    send_at,
                    reference: self.reference,
                    metadata: self.metadata,
                    idempotency_key: None,
                    validity_s,
                    fallback,
                    force: self.force.unwrap_or(false),
                },
                mode,
            )),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}
