//! Reading messages: `GET /messages`, `GET /messages/{id}`, `GET /delivery-status`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::{Authorized, ReadMessages, SendMessages};
use super::dto::{DeliveryStatusView, MessagePage, MessageResource, RedriveResult, parse_rfc3339};
use super::extract::{Path, Query};
use super::paths;
use super::problem::{ApiError, FieldError, ProblemDetails};
use crate::domain::{Direction, MessageId, MessageSid, MessageStatus, PhoneNumber};
use crate::service::Lookup;
use crate::state::AppState;
use crate::store::{ListFilter, MessageRecord};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::MESSAGES, get(list_messages))
        .route(paths::MESSAGE, get(get_message))
        .route(paths::MESSAGE_RETRY, post(redrive_message))
        .route(paths::MESSAGE_CANCEL, post(cancel_message))
        .route(paths::MESSAGE_TYPING, post(typing_indicator))
        .route(paths::MESSAGES_RETRY, post(redrive_messages))
        .route(paths::DELIVERY_STATUS, get(delivery_status))
}

/// A message id as the API writes it: a hyphenated UUID (`format: uuid` in the document). Of
/// the forms the parser knows, only the hyphenated one is 36 characters long.
fn hyphenated_id(value: &str) -> Option<MessageId> {
    (value.len() == 36).then(|| value.parse().ok()).flatten()
}

fn parse_id(field: &str, value: &str) -> Result<MessageId, ApiError> {
    hyphenated_id(value).ok_or_else(|| ApiError::field(field, format!("is not a message id (a hyphenated UUID): {value:?}")))
}

/// Fetches one message.
#[utoipa::path(
    get,
    path = "/api/v1/whatsapp/messages/{id}",
    tag = "messages",
    operation_id = "get_message",
    security(("bearer" = ["messages:read"])),
    params(("id" = MessageId, Path, description = "The message's id (a UUID).")),
    responses(
        (status = 200, description = "The message.", body = MessageResource),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No message with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`id` is not a UUID.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_message(
    State(state): State<AppState>,
    _claims: Authorized<ReadMessages>,
    Path(id): Path<String>,
) -> Result<Json<MessageResource>, ApiError> {
    let id = parse_id("id", &id)?;
    Ok(Json(state.gateway.message(id).await?.into()))
}

/// Sends a dead-lettered message again.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/messages/{id}/retry",
    tag = "messages",
    operation_id = "redrive_message",
    summary = "Redrive a dead-lettered message",
    description = "A message the gateway gave up on after its last attempt (`dead_lettered`) becomes `pending` again, due now, \
                   with a fresh allowance of `MAX_ATTEMPTS` attempts. Its attempt numbers go on, its history keeps the dead \
                   letter and gains the redrive, and the metrics stop counting it as failed. Only a dead-lettered message can \
                   be redriven: Twilio has never accepted it, so sending it again cannot send it twice.",
    security(("bearer" = ["messages:send"])),
    params(("id" = MessageId, Path, description = "The message's id (a UUID).")),
    responses(
        (status = 200, description = "The message, `pending` again.", body = MessageResource),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No message with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The message is not dead-lettered; the problem names its status.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`id` is not a UUID.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn redrive_message(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<SendMessages>,
    Path(id): Path<String>,
) -> Result<Json<MessageResource>, ApiError> {
    let id = parse_id("id", &id)?;
    Ok(Json(state.gateway.redrive(id).await?.into()))
}

/// Shows a contact that a reply to their message is being typed.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/messages/{id}/typing",
    tag = "messages",
    operation_id = "typing_indicator",
    summary = "Show a typing indicator",
    description = "For an incoming message: asks Twilio to show its sender that a reply is being typed \
                   (`POST https://messaging.twilio.com/v2/Indicators/Typing.json`, `channel=whatsapp`), which also marks the \
                   message read. WhatsApp shows it for up to 25 seconds, or until the reply arrives.",
    security(("bearer" = ["messages:send"])),
    params(("id" = MessageId, Path, description = "The incoming message's id (a UUID).")),
    responses(
        (status = 200, description = "Shown; the incoming message.", body = MessageResource),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No message with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Not an incoming message, or Twilio refused the indicator; the problem says why.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`id` is not a UUID.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Twilio could not be reached; retry.", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    )
)]
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn typing_indicator(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<SendMessages>,
    Path(id): Path<String>,
) -> Result<Json<MessageResource>, ApiError> {
    let id = parse_id("id", &id)?;
    Ok(Json(state.gateway.typing(id).await?.into()))
}

/// Withdraws a message Twilio does not have yet.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/messages/{id}/cancel",
    tag = "messages",
    operation_id = "cancel_message",
    summary = "Cancel a message that has not been sent",
    description = "A message Twilio does not have yet — `pending` (due or scheduled with `send_at`) or `retrying` — becomes \
                   `canceled` and is never sent; its history gains the cancel. A message Twilio has (or that ended) is a 409, \
                   and so is one a worker is sending at this moment or whose last attempt may have reached Twilio (its outcome \
                   is being asked about): ask again in a few seconds.",
    security(("bearer" = ["messages:send"])),
    params(("id" = MessageId, Path, description = "The message's id (a UUID).")),
    responses(
        (status = 200, description = "The message, `canceled`.", body = MessageResource),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No message with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Too late (Twilio has it, or it ended) or not safe yet; the problem says which.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`id` is not a UUID.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn cancel_message(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<SendMessages>,
    Path(id): Path<String>,
) -> Result<Json<MessageResource>, ApiError> {
    let id = parse_id("id", &id)?;
    Ok(Json(state.gateway.cancel(id).await?.into()))
}

/// Which dead-lettered messages to redrive (all optional).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RedriveQuery {
    /// Only messages to this number (E.164, `whatsapp:` optional).
    phone: Option<String>,
    /// Only messages created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only messages created before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Only messages with this application reference.
    reference: Option<String>,
    /// At most this many (the newest), 1 … 1000; default 100. Call again for more.
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::dto::number::optional_query_integer")]
    limit: Option<i64>,
}

/// Sends again the dead-lettered messages a filter matches.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/messages/retry",
    tag = "messages",
    operation_id = "redrive_messages",
    summary = "Redrive dead-lettered messages in bulk",
    description = "Every dead-lettered message matching the filters (at most `limit`, the newest first) is redriven as by \
                   `POST /messages/{id}/retry`. An empty result is not an error: nothing matched.",
    security(("bearer" = ["messages:send"])),
    params(RedriveQuery),
    responses(
        (status = 200, description = "The messages redriven.", body = RedriveResult),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filters; every bad parameter is named.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn redrive_messages(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<SendMessages>,
    Query(q): Query<RedriveQuery>,
) -> Result<Json<RedriveResult>, ApiError> {
    let limit = q.limit;
    let list = ListQuery {
        status: None,
        direction: Some("outbound".into()),
        phone: q.phone,
        from: q.from,
        to: q.to,
        reference: q.reference,
        limit: None,
        cursor: None,
    };
    let mut errors = Vec::new();
    let filter = list.into_filter().map_err(|e| errors.extend(e.field_errors())).ok();
    if let Some(l) = limit.filter(|l| !(1..=1000).contains(l)) {
        errors.push(FieldError::new("limit", format!("must be from 1 to 1000, got {l}")));
    }
    let filter = match filter {
        Some(filter) if errors.is_empty() => ListFilter { limit: limit.unwrap_or(100), ..filter },
        _ => return Err(ApiError::Validation(errors)),
    };
    let messages = state.gateway.redrive_matching(&filter).await?;
    Ok(Json(RedriveResult { redriven: messages.len(), messages: messages.into_iter().map(Into::into).collect() }))
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
    security(("bearer" = ["messages:read"])),
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
    _claims: Authorized<ReadMessages>,
    Query(q): Query<StatusQuery>,
) -> Result<Json<DeliveryStatusView>, ApiError> {
    // Both are checked when both are given (the document calls a malformed one invalid either way).
    let mut errors = Vec::new();
    let id = q.id.as_deref().and_then(|id| parse_id("id", id).map_err(|e| errors.extend(e.field_errors())).ok());
    let sid = q
        .message_sid
        .as_deref()
        .and_then(|sid| MessageSid::parse(sid).map_err(|e| errors.push(FieldError::new("message_sid", e.to_string()))).ok());
    let lookup = match (id, sid) {
        (Some(id), _) if errors.is_empty() => Lookup::Id(id),
        (None, Some(sid)) if errors.is_empty() => Lookup::Sid(sid),
        _ => {
            if errors.is_empty() {
                errors.push(FieldError::new("id", "either `id` or `message_sid` is required"));
            }
            return Err(ApiError::Validation(errors));
        }
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
    #[serde(default, deserialize_with = "super::dto::number::optional_query_integer")]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// What a cursor looks like: the last message's creation time (Unix milliseconds) and id. Any
/// cursor of this shape is a position in the list, so the document's pattern is the whole rule.
pub(crate) const CURSOR_PATTERN: &str = "^-?[0-9]{1,15}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

fn encode_cursor(m: &MessageRecord) -> String {
    format!("{}_{}", m.created_at, m.id)
}

fn decode_cursor(cursor: &str) -> Option<(i64, MessageId)> {
    let (at, id) = cursor.split_once('_')?;
    let digits = at.strip_prefix('-').unwrap_or(at);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((at.parse().ok()?, hyphenated_id(id)?))
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
            filter.phone = PhoneNumber::parse_exact(&p).map_err(|e| errors.push(FieldError::new("phone", e.to_string()))).ok();
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
                errors.push(FieldError::new("cursor", "is not a cursor as this endpoint returns them (`<created ms>_<message id>`)"));
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
    security(("bearer" = ["messages:read"])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page of messages.", body = MessagePage),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filters; every bad parameter is named.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn list_messages(
    State(state): State<AppState>,
    _claims: Authorized<ReadMessages>,
    Query(q): Query<ListQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let filter = q.into_filter()?;
    let mut page_filter = filter.clone();
    page_filter.limit = filter.limit + 1;
    let mut messages = state.gateway.list_messages(&page_filter).await?;
    let more = messages.len() as i64 > filter.limit;
    messages.truncate(filter.limit as usize);
    let next_cursor = if more { messages.last().map(encode_cursor) } else { None };
    Ok(Json(MessagePage { messages: messages.into_iter().map(Into::into).collect(), next_cursor }))
}
