//! `POST /api/v1/whatsapp/status`: Twilio's status callbacks.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use tracing::Instrument as _;

use super::TwilioSigned;
use crate::domain::status::StatusEvent;
use crate::domain::{MessageId, MessageSid, MessageStatus};
use crate::error::ApiError;
use crate::http::AppState;
use crate::store::{ApplyOutcome, MessageRef, StatusSource, now_ms};

/// How long a callback is remembered as seen (the replay / nonce window).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Applies one status callback; 200 once committed (or when there is nothing to apply).
#[tracing::instrument(skip_all, fields(sid, status))]
pub(super) async fn status_callback(State(state): State<AppState>, signed: TwilioSigned) -> Result<StatusCode, ApiError> {
    let sid = signed.get("MessageSid").or_else(|| signed.get("SmsSid")).ok_or_else(|| ApiError::field("MessageSid", "is required"))?;
    let sid = MessageSid::parse(sid).map_err(|e| ApiError::field("MessageSid", e.to_string()))?;
    let reported =
        signed.get("MessageStatus").or_else(|| signed.get("SmsStatus")).ok_or_else(|| ApiError::field("MessageStatus", "is required"))?;
    tracing::Span::current().record("sid", sid.as_str()).record("status", reported);
    let Some(status) = MessageStatus::from_twilio(reported) else {
        // `accepted`, `scheduled`, `canceled`…: nothing the outbound lifecycle tracks.
        metrics::counter!("gateway_callbacks_total", "result" => "not_tracked").increment(1);
        return Ok(StatusCode::OK);
    };
    let error_code = match signed.get("ErrorCode").filter(|c| !c.is_empty()) {
        Some(code) => Some(code.parse::<i64>().map_err(|_| ApiError::field("ErrorCode", format!("is not a number: {code:?}")))?),
        None => None,
    };
    // Replays and Twilio's retries of a callback already applied are acknowledged, not applied
    // again (the state machine would ignore them anyway; this also keeps them out of the log).
    let replay_key = match &signed.idempotency_token {
        Some(token) => format!("callback:token:{token}"),
        None => format!("callback:{}:{reported}:{}", sid.as_str(), error_code.unwrap_or(0)),
    };
    if state.shared.seen(&replay_key).await.unwrap_or(false) {
        metrics::counter!("gateway_callbacks_total", "result" => "replayed").increment(1);
        tracing::info!("replayed status callback acknowledged, not applied again");
        return Ok(StatusCode::OK);
    }
    let id = signed.query_param("mid").and_then(|m| m.parse::<MessageId>().ok());
    let target = MessageRef { id, sid: sid.as_str().to_owned() };
    let event = StatusEvent { status, at: now_ms(), error_code };
    let error_message = signed.get("ChannelStatusMessage").map(str::to_owned);
    // Runs to the end even if Twilio hangs up. The callback is remembered as seen only once its
    // effect is committed, so a retry of one that failed is applied, never taken for a replay;
    // two copies racing each other both apply, harmlessly (the state machine ignores the second).
    let outcome = tokio::spawn(
        async move {
            let outcome = state.gateway.store().apply_status(&target, &event, StatusSource::Callback, error_message).await?;
            if let Err(e) = state.shared.remember_once(&replay_key, REPLAY_WINDOW).await {
                tracing::warn!(error = %e, "could not remember the callback for the replay window");
            }
            Ok::<_, ApiError>(outcome)
        }
        .instrument(tracing::Span::current()),
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))??;
    let result = match outcome {
        ApplyOutcome::Applied { .. } => "applied",
        ApplyOutcome::Ignored { .. } => "ignored",
        ApplyOutcome::Unmatched => "unmatched",
    };
    metrics::counter!("gateway_callbacks_total", "result" => result).increment(1);
    tracing::info!(result, "status callback");
    Ok(StatusCode::OK)
}
