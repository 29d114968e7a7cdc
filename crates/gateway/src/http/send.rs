//! `POST /api/v1/whatsapp/send`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use super::AppState;
use super::auth::Claims;
use super::dto::{MessageResource, SendMessageRequest};
use super::extract::ValidJson;
use crate::error::ApiError;
use crate::service::SendMode;
use crate::store::now_ms;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/whatsapp/send", post(send_message))
}

/// Stores and queues (202) or sends at once (201) one message.
#[tracing::instrument(skip_all, fields(sub = %claims.sub))]
async fn send_message(
    State(state): State<AppState>,
    claims: Claims,
    ValidJson(request): ValidJson<SendMessageRequest>,
) -> Result<(StatusCode, Json<MessageResource>), ApiError> {
    let (message, mode) = request.into_domain(now_ms())?;
    let stored = state.gateway.send(message, mode).await?;
    tracing::info!(message_id = %stored.id, status = %stored.status(), "message accepted");
    let status = if mode == SendMode::Immediate { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    Ok((status, Json(stored.into())))
}
