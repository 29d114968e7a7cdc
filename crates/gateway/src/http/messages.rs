//! Reading messages: `GET /messages`, `GET /messages/{id}`, `GET /delivery-status`.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::dto::{DeliveryStatusView, MessagePage, MessageResource, parse_rfc3339};
use super::paths;
use super::problem::{ApiError, FieldError, ProblemDetails};
use crate::domain::{Direction, MessageId, MessageSid, MessageStatus, PhoneNumber};
use crate::security::Claims;
use crate::service::Lookup;
use crate::state::AppState;
use crate::store::{ListFilter, MessageRecord};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::MESSAGES, get(list_messages))
        .route(paths::MESSAGE, get(get_message))
        .route(paths::DELIVERY_STATUS, get(delivery_status))
}

fn parse_id(field: &str, value: &str) -> Result<MessageId, ApiError> {
    value.parse().map_err(|_| ApiError::field(field, format!("is not a message id (a UUID): {value:?}")))
}

/// Fetches one message.
#[utoipa::path(
    get,
    path = "/api/v1/whatsapp/messages/{id}",
    tag = "messages",
    operation_id = "get_message",
    security(("bearer" = [])),
    params(("id" = MessageId, Path, description = "The message's id (a UUID).")),
    responses(
        (status = 200, description = "The message.", body = MessageResource),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No message with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`id` is not a UUID.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_message(State(state): State<AppState>, _claims: Claims, Path(id): Path<String>) -> Result<Json<MessageResource>, ApiError> {
    let id = parse_id("id", &id)?;
    Ok(Json(state.gateway.message(id).await?.into()))
}

/// Which message: `id` or `message_sid` (one is required; `id` wins when both are given).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StatusQuery {
    /// The gateway's id for the message (a UUID).
    #[param(value_type = Option<MessageId>)]
    id: Option<String>,
    /// Twilio's message SID (`SM` or `MM` followed by 32 hex digits).
    #[param(pattern = "^(SM|MM)[0-9a-fA-F]{32}$")]
    message_sid: Option<String>,
}

/// The message with its status timestamps, error code, full status history and send attempts.
#[utoipa::path(
    get,
    path = "/api/v1/whatsapp/delivery-status",
    tag = "messages",
    operation_id = "delivery_status",
    security(("bearer" = [])),
    params(StatusQuery),
    responses(
        (status = 200, description = "The message, its history and its attempts.", body = DeliveryStatusView),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such message.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Neither `id` nor `message_sid`, or one of them malformed.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn delivery_status(
    State(state): State<AppState>,
    _claims: Claims,
    Query(q): Query<StatusQuery>,
) -> Result<Json<DeliveryStatusView>, ApiError> {
    let lookup = match (q.id.as_deref(), q.message_sid.as_deref()) {
        (Some(id), _) => Lookup::Id(parse_id("id", id)?),
        (None, Some(sid)) => Lookup::Sid(MessageSid::parse(sid).map_err(|e| ApiError::field("message_sid", e.to_string()))?),
        (None, None) => return Err(ApiError::field("id", "either `id` or `message_sid` is required")),
    };
    Ok(Json(state.gateway.delivery_status(&lookup).await?.into()))
}

/// Filters and paging of the message list (all optional).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only messages in this status.
    #[param(value_type = Option<MessageStatus>)]
    status: Option<String>,
    /// Only messages in this direction.
    #[param(value_type = Option<Direction>)]
    direction: Option<String>,
    /// Only messages to or from this number (E.164, `whatsapp:` optional).
    phone: Option<String>,
    /// Only messages created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only messages created before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Only messages with this application reference.
    reference: Option<String>,
    /// Page size, 1 … 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn encode_cursor(m: &MessageRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", m.created_at, m.id))
}

fn decode_cursor(cursor: &str) -> Option<(i64, MessageId)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

impl ListQuery {
    fn into_filter(self) -> Result<ListFilter, ApiError> {
        let mut errors = Vec::new();
        let mut filter = ListFilter { limit: 50, reference: self.reference, ..Default::default() };
        if let Some(s) = self.status {
            filter.status = s.parse::<MessageStatus>().map_err(|e| errors.push(FieldError::new("status", e.to_string()))).ok();
        }
        if let Some(d) = self.direction {
            filter.direction = Direction::parse(&d);
            if filter.direction.is_none() {
                errors.push(FieldError::new("direction", "must be `outbound` or `inbound`"));
            }
        }
        if let Some(p) = self.phone {
            filter.phone = PhoneNumber::parse(&p).map_err(|e| errors.push(FieldError::new("phone", e.to_string()))).ok();
        }
        filter.from = self.from.and_then(|v| parse_rfc3339("from", &v).map_err(|e| errors.push(e)).ok());
        filter.to = self.to.and_then(|v| parse_rfc3339("to", &v).map_err(|e| errors.push(e)).ok());
        match self.limit {
            Some(l) if (1..=500).contains(&l) => filter.limit = l,
            Some(l) => errors.push(FieldError::new("limit", format!("must be from 1 to 500, got {l}"))),
            None => {}
        }
        if let Some(c) = self.cursor {
            filter.after = decode_cursor(&c);
            if filter.after.is_none() {
                errors.push(FieldError::new("cursor", "is not a cursor returned by this endpoint"));
            }
        }
        if errors.is_empty() { Ok(filter) } else { Err(ApiError::Validation(errors)) }
    }
}

/// Lists messages, newest first, with filters and cursor pagination.
#[utoipa::path(
    get,
    path = "/api/v1/whatsapp/messages",
    tag = "messages",
    operation_id = "list_messages",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page of messages.", body = MessagePage),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filters; every bad parameter is named.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn list_messages(State(state): State<AppState>, _claims: Claims, Query(q): Query<ListQuery>) -> Result<Json<MessagePage>, ApiError> {
    let filter = q.into_filter()?;
    let mut page_filter = filter.clone();
    page_filter.limit = filter.limit + 1;
    let mut messages = state.gateway.list_messages(&page_filter).await?;
    let more = messages.len() as i64 > filter.limit;
    messages.truncate(filter.limit as usize);
    let next_cursor = if more { messages.last().map(encode_cursor) } else { None };
    Ok(Json(MessagePage { messages: messages.into_iter().map(Into::into).collect(), next_cursor }))
}
