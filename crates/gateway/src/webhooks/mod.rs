//! Twilio's webhooks: status callbacks and incoming messages. Both are checked against
//! `X-Twilio-Signature` over the raw body before anything is parsed, and answered 2xx only after
//! their effect is committed (so a failure answers 5xx and Twilio retries).

mod inbound;
mod signed;
mod status;

use axum::Router;
use axum::routing::post;

pub use signed::{SignatureConfig, TwilioSigned};

use crate::http::AppState;

/// Path of the status callback endpoint.
pub const STATUS_PATH: &str = "/api/v1/whatsapp/status";
/// Path of the incoming message endpoint.
pub const INBOUND_PATH: &str = "/api/v1/whatsapp/webhook";

/// The webhook routes.
pub fn router() -> Router<AppState> {
    Router::new().route(STATUS_PATH, post(status::status_callback)).route(INBOUND_PATH, post(inbound::incoming_message))
}
