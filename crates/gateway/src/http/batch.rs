//! `POST /api/v1/whatsapp/send/batch`: up to 1,000 messages in one request, one result per item.
//!
//! Each item is a send request (the body of `POST /send`) with an optional `idempotency_key` of
//! its own; an item that is invalid, still in flight under its key, or over the send rate limit
//! gets its own problem, and the others go on. The accepted items are stored through the same
//! batched write path as single sends, all at once, so they share group commits.

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument as _;

use super::auth::{Authorized, SendMessages};
use super::dto::{MessageResource, SendMessageRequest};
use super::extract::{body_rejection_within, check_json_content_type, field_error, parse_json};
use super::idempotency::{self, Found, Held};
use super::paths;
use super::problem::{ApiError, FieldError, ProblemDetails};
use super::rate_limit;
use crate::domain::NewOutboundMessage;
use crate::service::SendMode;
use crate::state::AppState;

/// Most items in one batch.
pub const MAX_ITEMS: usize = 1000;
/// Largest batch body: 1,000 items of up to 8 KiB each.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::SEND_BATCH, post(send_batch).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
}

/// The request: the messages to send.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSendRequest {
    /// 1 to 1,000 messages, each the body of `POST /send` (see `SendMessageRequest`) with an
    /// optional `idempotency_key` (1 to 255 visible ASCII characters, scoped to the token's
    /// subject like the `Idempotency-Key` header). An item that does not conform is refused on its
    /// own, in its result.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<Object>)]
    pub messages: Vec<Value>,
}

/// The answer: one result per item, in the order of the request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchSendResponse {
    /// How many items were accepted (stored and queued, or replayed).
    pub accepted: usize,
    /// How many were refused (each with its problem).
    pub rejected: usize,
    /// One result per item, in request order.
    pub results: Vec<BatchItemResult>,
}

/// What became of one item.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchItemResult {
    /// The item's position in `messages` (from 0).
    pub index: usize,
    /// The HTTP status a single send of this item would have had: 202 accepted, or the problem's.
    pub status: u16,
    /// Whether this is the stored answer of an earlier request with the same `idempotency_key`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// The accepted message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MessageResource>)]
    pub message: Option<Value>,
    /// Why the item was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProblemDetails>,
}

impl BatchItemResult {
    fn refused(index: usize, error: &ApiError) -> Self {
        let (status, problem) = error.details();
        Self { index, status: status.as_u16(), replayed: false, message: None, problem: Some(problem) }
    }
}

/// An item ready to store.
struct Ready {
    index: usize,
    message: NewOutboundMessage,
    held: Option<Held>,
}

/// Sends up to 1,000 messages; one result per item.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/send/batch",
    tag = "messages",
    operation_id = "send_batch",
    summary = "Send up to 1,000 WhatsApp messages in one request",
    description = "Each item is validated, made idempotent by its own `idempotency_key`, counted against the token's send rate \
                   limit (each item counts), and stored and queued like a `POST /send` in `queue` mode; one bad item does not \
                   fail the others. The answer lists one result per item, in request order: `status` 202 with the `message`, or \
                   the item's `problem` (422 invalid, 409 its key in flight, 429 over the send limit, 503 the store unavailable).",
    security(("bearer" = ["messages:send"])),
    request_body(content = BatchSendRequest, content_type = "application/json", description = "The messages to send."),
    responses(
        (status = 200, description = "One result per item (some may be refused).", body = BatchSendResponse),
        (status = 400, description = "The body is not well-formed JSON.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` challenge naming the problem."))),
        (status = 413, description = "The body is larger than 8 MiB.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared as `application/json`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The batch itself is invalid: `messages` missing, empty, longer than 1,000, or holding something other than objects.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (the request itself, on the API limit).", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    )
)]
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn send_batch(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<SendMessages>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_json_content_type(&headers)?;
    let body = body.map_err(|e| body_rejection_within(e, MAX_BODY_BYTES))?;
    let request: BatchSendRequest = parse_json(&body)?;
    let items = check_shape(request.messages)?;
    let subject = claims.sub;

    let mut results: Vec<BatchItemResult> = Vec::with_capacity(items.len());
    let mut keyed = Vec::new();
    let mut ready = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match parse_item(item, &subject) {
            Err(error) => results.push(BatchItemResult::refused(index, &error)),
            Ok((message, Some((key, fingerprint)))) => keyed.push((index, message, key, fingerprint)),
            Ok((message, None)) => ready.push(Ready { index, message, held: None }),
        }
    }
    // The keys, all looked up at once.
    let lookups = keyed.into_iter().map(|(index, message, key, fingerprint)| {
        let state = &state;
        let subject = &subject;
        async move { (index, message, idempotency::lookup(state, subject, &key, fingerprint, "idempotency_key").await) }
    });
    for (index, message, found) in futures_util::future::join_all(lookups).await {
        match found {
            Err(error) => results.push(BatchItemResult::refused(index, &error)),
            Ok(Found::Replay { status, body }) => {
                let message = serde_json::from_slice(&body).map_err(ApiError::internal)?;
                results.push(BatchItemResult { index, status: status.as_u16(), replayed: true, message: Some(message), problem: None });
            }
            Ok(Found::Run(held)) => ready.push(Ready { index, message, held: Some(held) }),
            Ok(Found::Unrecorded) => ready.push(Ready { index, message, held: None }),
        }
    }
    ready.sort_by_key(|item| item.index);

    // Each item to store counts against the send limit; those beyond what it grants wait.
    let count = u32::try_from(ready.len()).unwrap_or(u32::MAX);
    let limited = if count == 0 { None } else { rate_limit::take_sends(&state, &subject, count).await };
    if let Some((limit, decision)) = &limited {
        let over = ready.split_off(usize::try_from(decision.granted).unwrap_or(0).min(ready.len()));
        let retry = decision.retry_after.as_millis().div_ceil(1000).max(1);
        let error = ApiError::TooManyRequests(format!(
            "the send rate limit of {} messages per minute is reached; retry this item in {retry} s",
            limit.per_period
        ));
        for item in over {
            if let Some(held) = item.held {
                idempotency::abandon(&state, held).await;
            }
            results.push(BatchItemResult::refused(item.index, &error));
        }
    }

    // Stored all at once (the writer commits them together), and run to the end even if the
    // client hangs up: a message stored without its idempotency record completed would be sent
    // again on the client's retry.
    let task = tokio::spawn(
        {
            let state = state.clone();
            async move { futures_util::future::join_all(ready.into_iter().map(|item| store(&state, item))).await }
        }
        .instrument(tracing::Span::current()),
    );
    results.extend(task.await.map_err(ApiError::internal)?);
    results.sort_by_key(|result| result.index);

    let accepted = results.iter().filter(|r| r.problem.is_none()).count();
    let answer = BatchSendResponse { accepted, rejected: results.len() - accepted, results };
    tracing::debug!(accepted = answer.accepted, rejected = answer.rejected, "batch answered");
    let mut response = (StatusCode::OK, Json(answer)).into_response();
    if let Some((limit, decision)) = &limited {
        rate_limit::set_headers(response.headers_mut(), limit, decision);
        response.headers_mut().remove("retry-after");
    }
    Ok(response)
}

/// The items as objects; anything else refuses the whole batch (it is not a batch of messages).
fn check_shape(messages: Vec<Value>) -> Result<Vec<serde_json::Map<String, Value>>, ApiError> {
    if messages.is_empty() || messages.len() > MAX_ITEMS {
        return Err(ApiError::field("messages", format!("must hold 1 to {MAX_ITEMS} messages, not {}", messages.len())));
    }
    let mut errors = Vec::new();
    let items = messages
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| match item {
            Value::Object(object) => Some(object),
            _ => {
                errors.push(FieldError::new(format!("messages[{index}]"), "must be an object (a send request)"));
                None
            }
        })
        .collect();
    if errors.is_empty() { Ok(items) } else { Err(ApiError::Validation(errors)) }
}

/// One item as a message to store, and its idempotency key and fingerprint if it has one.
#[allow(clippy::type_complexity)]
fn parse_item(mut item: serde_json::Map<String, Value>, subject: &str) -> Result<(NewOutboundMessage, Option<(String, String)>), ApiError> {
    let key = match item.remove("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(idempotency::check_key(&key, "idempotency_key")?),
        Some(_) => return Err(ApiError::field("idempotency_key", "must be a string of 1 to 255 visible ASCII characters")),
    };
    let content = Value::Object(item);
    let fingerprint = key.as_ref().map(|_| twilio_signature::hex_sha256(content.to_string().as_bytes()));
    let request: SendMessageRequest = serde_path_to_error::deserialize(&content).map_err(|err| {
        let path = err.path().to_string();
        ApiError::Validation(vec![field_error(&path, &err.into_inner().to_string(), "item")])
    })?;
    let (mut message, mode) = request.into_domain()?;
    if mode == SendMode::Immediate {
        return Err(ApiError::field(
            "mode",
            "must be `queue` in a batch: its items are stored and queued; send one at a time for `immediate`",
        ));
    }
    message.idempotency_key = key.as_deref().map(|k| idempotency::scoped(subject, k));
    Ok((message, key.zip(fingerprint)))
}

/// Stores and queues one item; completes or releases its key.
async fn store(state: &AppState, item: Ready) -> BatchItemResult {
    match state.gateway.send(item.message, SendMode::Queue).await {
        Ok(stored) => {
            let resource = MessageResource::from(stored);
            let json = serde_json::to_value(&resource).unwrap_or(Value::Null);
            if let Some(held) = item.held {
                idempotency::complete(state, held, StatusCode::ACCEPTED, json.to_string().as_bytes()).await;
            }
            BatchItemResult {
                index: item.index,
                status: StatusCode::ACCEPTED.as_u16(),
                replayed: false,
                message: Some(json),
                problem: None,
            }
        }
        Err(e) => {
            if let Some(held) = item.held {
                idempotency::abandon(state, held).await;
            }
            BatchItemResult::refused(item.index, &ApiError::from(e))
        }
    }
}
