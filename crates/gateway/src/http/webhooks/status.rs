//! `POST /api/v1/whatsapp/status`: Twilio's status callbacks.

use axum::extract::State;
use axum::http::StatusCode;
use tracing::Instrument as _;

use super::forms::StatusCallbackForm;
use super::signed::TwilioSigned;
use crate::domain::{MessageId, MessageStatus, StatusEvent, StatusSource, now_ms};
use crate::http::problem::{ApiError, ProblemDetails};
use crate::state::AppState;
use crate::store::{ApplyOutcome, StatusReport};
use crate::telemetry::metrics;

/// Twilio's status callbacks.
///
/// Applies one status report; answers 200 once committed (or when there is nothing to apply, or it
/// was already applied). A 5xx makes Twilio retry. Reports are applied monotonically: a late or
/// duplicate report never moves a message backwards, and the same callback twice is applied and
/// logged once.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/status",
    tag = "webhooks",
    operation_id = "status_callback",
    security(("twilio_signature" = [])),
    params(
        ("mid" = Option<String>, Query, description = "The gateway's message id, added to the `StatusCallback` URL it gives Twilio."),
        ("I-Twilio-Idempotency-Token" = Option<String>, Header, description = "The same on every retry of one callback."),
    ),
    request_body(
        content = StatusCallbackForm,
        content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback form (a JSON object of the same parameters is also accepted when the URL carries `bodySHA256`)."
    ),
    responses(
        (status = 200, description = "Applied, ignored (stale, duplicate or untracked status) or kept for a SID not recorded yet; no content."),
        (status = 400, description = "The form cannot be read.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Missing or invalid `X-Twilio-Signature`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`MessageSid`, `MessageStatus` missing or malformed, or `ErrorCode` not a number.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (per client IP).", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Not committed: the database is unavailable; Twilio retries.", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    )
)]
#[tracing::instrument(skip_all, fields(sid, status))]
pub(crate) async fn status_callback(
    State(state): State<AppState>,
    signed: TwilioSigned<StatusCallbackForm>,
) -> Result<StatusCode, ApiError> {
    let form = &signed.form;
    let sid = form.message_sid.clone().ok_or_else(|| ApiError::field("MessageSid", "is required"))?;
    let reported = form.message_status.as_deref().ok_or_else(|| ApiError::field("MessageStatus", "is required"))?;
    tracing::Span::current().record("sid", sid.as_str()).record("status", reported);
    let Some(status) = MessageStatus::from_twilio_report(reported, form.error_code) else {
        // Not a status Twilio documents: acknowledged (Twilio would only retry it), not tracked.
        metrics::callback("not_tracked");
        return Ok(StatusCode::OK);
    };
    let id = signed.query_param("mid").and_then(|m| m.parse::<MessageId>().ok());
    let report = StatusReport {
        id,
        sid,
        event: StatusEvent { status, at: now_ms(), error_code: form.error_code },
        source: StatusSource::Callback,
        error_message: form.channel_status_message.clone(),
    };
    // Runs to the end even if Twilio hangs up: the answer comes once the effect is committed.
    let gateway = state.gateway.clone();
    let outcome = tokio::spawn(async move { gateway.report_status(report).await }.instrument(tracing::Span::current()))
        .await
        .map_err(ApiError::internal)??;
    let result = match outcome {
        ApplyOutcome::Applied { .. } => "applied",
        ApplyOutcome::Ignored { .. } | ApplyOutcome::Skipped => "ignored",
        ApplyOutcome::Duplicate { .. } => "duplicate",
        ApplyOutcome::Unmatched => "unmatched",
    };
    metrics::callback(result);
    tracing::debug!(result, "status callback");
    Ok(StatusCode::OK)
}
