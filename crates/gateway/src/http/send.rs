//! `POST /api/v1/whatsapp/send`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::AppState;
use super::auth::Claims;
use super::dto::{MessageResource, SendMessageRequest};
use super::extract::{check_json_content_type, parse_json};
use super::idempotency::{self, Begin};
use crate::error::ApiError;
use crate::service::SendMode;
use crate::store::now_ms;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/whatsapp/send", post(send_message))
}

/// Stores and queues (202) or sends at once (201) one message; idempotent with a key.
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn send_message(
    State(state): State<AppState>,
    claims: Claims,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_json_content_type(&headers)?;
    let body = body?;
    let key = idempotency::key_from(&headers)?;
    let request: SendMessageRequest = parse_json(&body)?;
    let (message, mode) = request.into_domain(now_ms())?;
    let held = match idempotency::begin(&state, &claims.sub, key, &body).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::NoKey => None,
        Begin::Run(held) => Some(held),
    };
    let stored = match state.gateway.send(message, mode).await {
        Ok(stored) => stored,
        Err(e) => {
            if let Some(held) = held {
                idempotency::abandon(&state, held).await;
            }
            return Err(e.into());
        }
    };
    tracing::info!(message_id = %stored.id, status = %stored.status(), "message accepted");
    let status = if mode == SendMode::Immediate { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    let resource = MessageResource::from(stored);
    if let Some(held) = held {
        let json = serde_json::to_vec(&resource).map_err(|e| ApiError::Internal(e.into()))?;
        idempotency::complete(&state, held, status, &json).await?;
    }
    Ok((status, Json(resource)).into_response())
}
