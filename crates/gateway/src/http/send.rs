//! `POST /api/v1/whatsapp/send`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tracing::Instrument as _;

use super::auth::{Authorized, SendMessages};
use super::dto::{MessageResource, SendMessageRequest};
use super::extract::{body_rejection, check_json_content_type, parse_json};
use super::idempotency::{self, Begin};
use super::paths;
use super::problem::{ApiError, ProblemDetails};
use crate::service::SendMode;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::SEND, post(send_message))
}

/// Stores and queues (202) or sends at once (201) one message; idempotent with a key.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/send",
    tag = "messages",
    operation_id = "send_message",
    summary = "Send one WhatsApp message",
    description = "Validates the request (every invalid field is reported at once, before anything is stored), stores the message and \
                   queues it (`mode: queue`, 202) or sends it to Twilio within the call (`mode: immediate`, 201). With an \
                   `Idempotency-Key`, a retry with the same key and body returns the first answer (with `Idempotent-Replayed: true`) \
                   and sends nothing twice; keys are scoped per token subject and kept 24 hours.",
    security(("bearer" = ["messages:send"])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request idempotent: 1 to 255 visible ASCII characters (a UUID is a good choice)."),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Accepted instead of `Idempotency-Key` (which wins when both are sent)."),
    ),
    request_body(content = SendMessageRequest, content_type = "application/json", description = "The message to send."),
    responses(
        (status = 201, description = "Sent within the call (`mode: immediate`); `status` shows how far it got.", body = MessageResource),
        (status = 202, description = "Stored and queued (`mode: queue`, the default).", body = MessageResource),
        (status = 400, description = "The body is not well-formed JSON.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer` challenge naming the problem."))),
        (status = 409, description = "A request with this `Idempotency-Key` is still being processed.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared as `application/json`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (each named in `errors`), or an `Idempotency-Key` reused with another body.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited.", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
        (status = 503, description = "A dependency (database, idempotency records) is unavailable; retry.", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    )
)]
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn send_message(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<SendMessages>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_json_content_type(&headers)?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency::key_from(&headers)?;
    let request: SendMessageRequest = parse_json(&body)?;
    let (mut message, mode) = request.into_domain()?;
    message.idempotency_key = key.as_deref().map(|k| idempotency::scoped(&claims.sub, k));
    let held = match idempotency::begin(&state, &claims.sub, key, &body).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::NoKey => None,
        Begin::Run(held) => Some(held),
    };
    // From here on the work runs to the end even if the client hangs up: a message stored
    // without its idempotency record completed would be sent again on the client's retry.
    let task = tokio::spawn(
        async move {
            let stored = match state.gateway.send(message, mode).await {
                Ok(stored) => stored,
                Err(e) => {
                    if let Some(held) = held {
                        idempotency::abandon(&state, held).await;
                    }
                    return Err(ApiError::from(e));
                }
            };
            tracing::debug!(message_id = %stored.id, status = %stored.status(), "message accepted");
            let status = if mode == SendMode::Immediate { StatusCode::CREATED } else { StatusCode::ACCEPTED };
            let resource = MessageResource::from(stored);
            if let Some(held) = held {
                let json = serde_json::to_vec(&resource).map_err(ApiError::internal)?;
                idempotency::complete(&state, held, status, &json).await;
            }
            Ok((status, resource))
        }
        .instrument(tracing::Span::current()),
    );
    let (status, resource) = task.await.map_err(ApiError::internal)??;
    Ok((status, Json(resource)).into_response())
}
