//! Twilio's webhooks: status callbacks and incoming messages. Both are checked against
//! `X-Twilio-Signature` over the raw body before anything is parsed ([`signed`]), read as the
//! forms in [`forms`], and answered 2xx only after their effect is committed (so a failure
//! answers 5xx and Twilio retries).

pub mod forms;
pub(crate) mod inbound;
pub mod signed;
pub(crate) mod status;

use axum::Router;
use axum::routing::post;

use super::paths;
use crate::state::AppState;

/// The webhook routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::STATUS_CALLBACK, post(status::status_callback))
        .route(paths::INBOUND_WEBHOOK, post(inbound::incoming_message))
}
