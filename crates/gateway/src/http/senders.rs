//! `GET /api/v1/whatsapp/senders`: each configured sender's pace, counts and health.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{Authorized, ReadMetrics};
use super::dto::{parse_rfc3339, rfc3339};
use super::extract::Query;
use super::paths;
use super::problem::{ApiError, ProblemDetails};
use crate::domain::{Origin, SenderHealth, now_ms};
use crate::state::AppState;

/// How far back the counts go unless `since` says otherwise (a day), and at most (a week).
const DEFAULT_SPAN_MS: i64 = 24 * 3_600_000;
const MAX_SPAN_MS: i64 = 7 * 24 * 3_600_000;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::SENDERS, get(senders))
}

/// `GET /senders` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SendersQuery {
    /// RFC 3339: count the messages created since then (default 24 hours ago; an earlier time than
    /// 7 days ago counts from 7 days ago, as the answer's `since` says).
    #[param(format = DateTime)]
    since: Option<String>,
}

/// Every sender the gateway sends from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendersView {
    /// The counts are of messages created since then (at most 7 days ago).
    pub since: String,
    /// The numbers (`TWILIO_WHATSAPP_FROM`), then the Messaging Service.
    pub senders: Vec<SenderView>,
}

/// One sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SenderView {
    /// The number (E.164) or the Messaging Service SID (`MG…`): what a send request's `from` names.
    #[schema(example = "+14155238886")]
    pub sender: String,
    /// `number` or `messaging_service`.
    #[schema(example = "number")]
    pub kind: String,
    /// Whether a message that names no `from` may go out from it.
    pub default: bool,
    /// Its sends per second, all instances together (`SENDER_RATE_PER_SEC`, or `SENDER_RATES`).
    pub pace_per_sec: u32,
    /// Messages created from it.
    pub total: i64,
    /// Accepted by Twilio.
    pub sent: i64,
    /// Delivered (or read).
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Failed or undelivered.
    pub failed: i64,
    /// Send attempts Twilio throttled (429, 20429, 63018); each such message waited and was sent
    /// again, none failed for it.
    pub throttled: i64,
    /// Incoming messages to it (a number) since `since`: the contacts who wrote to it, and
    /// whose replies go out from it.
    pub received: i64,
    /// Its health: `locked` (63051, nothing delivered since), `throttled` (held back now), else
    /// from its failure rate.
    pub health: SenderHealth,
    /// When Twilio last said its WhatsApp Business Account is locked (63051), while it is.
    pub locked_at: Option<String>,
    /// How much longer this instance holds it back because Twilio throttled it.
    pub held_back_ms: Option<u64>,
}

/// Each sender's pace, counts and health.
#[utoipa::path(
    get,
    path = "/api/v1/whatsapp/senders",
    tag = "metrics",
    operation_id = "list_senders",
    security(("bearer" = ["metrics:read"])),
    params(SendersQuery),
    responses(
        (status = 200, description = "Every configured sender: the numbers, then the Messaging Service.", body = SendersView),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`since` is not an RFC 3339 time.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(super) async fn senders(
    State(state): State<AppState>,
    _claims: Authorized<ReadMetrics>,
    Query(q): Query<SendersQuery>,
) -> Result<Json<SendersView>, ApiError> {
    let now = now_ms();
    let since = match q.since {
        Some(text) => parse_rfc3339("since", &text).map_err(|e| ApiError::Validation(vec![e]))?,
        None => now - DEFAULT_SPAN_MS,
    };
    // Counting reads each message of the span: a longer one is cut to a week, and the answer's
    // `since` says from when it counted.
    let since = since.max(now - MAX_SPAN_MS);
    let reports = state.gateway.senders(since).await?;
    Ok(Json(SendersView {
        since: rfc3339(since),
        senders: reports
            .into_iter()
            .map(|r| SenderView {
                sender: r.origin.as_str().to_owned(),
                kind: match r.origin {
                    Origin::Number(_) => "number",
                    Origin::Service(_) => "messaging_service",
                }
                .to_owned(),
                default: r.is_default,
                pace_per_sec: r.pace_per_sec,
                total: r.stats.total,
                sent: r.stats.sent,
                delivered: r.stats.delivered,
                read: r.stats.read,
                failed: r.stats.failed,
                throttled: r.stats.throttled,
                received: r.stats.received,
                health: r.health,
                locked_at: r.stats.locked_at.filter(|_| r.locked).map(rfc3339),
                held_back_ms: r.held_back.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect(),
    }))
}
