//! Control endpoints under `/_emulator/` for tests and demos (no authentication):
//!
//! - `GET /_emulator/counters`, `DELETE /_emulator/counters` (reset)
//! - `GET /_emulator/behaviours`, `DELETE /_emulator/behaviours`
//! - `PUT /_emulator/behaviours/{recipient}` with a JSON [`Behaviour`]
//! - `POST /_emulator/inbound` with JSON or a form ([`InboundMessage`]) → `{status, body, message_sid}`
//! - `POST /_emulator/windows/{recipient}` opens a 24-hour window, `DELETE` closes it

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use crate::inbound::BadInbound;
use crate::{Behaviour, Emulator, InboundMessage};

/// The control routes, at the root.
pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/_emulator/counters", get(counters).delete(reset_counters))
        .route("/_emulator/behaviours", get(behaviours).delete(clear_behaviours))
        .route("/_emulator/behaviours/{recipient}", put(set_behaviour))
        .route("/_emulator/inbound", post(inbound))
        .route("/_emulator/windows/{recipient}", post(open_window).delete(close_window))
}

fn problem(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn counters(State(emu): State<Emulator>) -> Json<crate::Counters> {
    Json(emu.counters())
}

async fn reset_counters(State(emu): State<Emulator>) -> StatusCode {
    emu.reset_counters();
    StatusCode::NO_CONTENT
}

async fn behaviours(State(emu): State<Emulator>) -> Json<std::collections::HashMap<String, Behaviour>> {
    Json(emu.behaviours())
}

async fn clear_behaviours(State(emu): State<Emulator>) -> StatusCode {
    emu.clear_behaviours();
    StatusCode::NO_CONTENT
}

async fn set_behaviour(State(emu): State<Emulator>, Path(recipient): Path<String>, body: Bytes) -> Response {
    match serde_json::from_slice::<Behaviour>(&body) {
        Ok(behaviour) => {
            emu.set_behaviour(&recipient, behaviour.clone());
            Json(behaviour).into_response()
        }
        Err(error) => problem(StatusCode::BAD_REQUEST, format_args!("invalid behaviour JSON: {error}")),
    }
}

async fn inbound(State(emu): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let is_json =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim_start().starts_with("application/json"));
    let message = if is_json {
        match serde_json::from_slice::<InboundMessage>(&body) {
            Ok(message) => message,
            Err(error) => {
                return problem(StatusCode::BAD_REQUEST, format_args!("invalid inbound JSON: {error}"));
            }
        }
    } else {
        let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        InboundMessage::from_form(&params)
    };
    match emu.inject_inbound(message).await {
        Ok(delivery) => {
            Json(json!({ "status": delivery.status, "body": delivery.body, "message_sid": delivery.message_sid })).into_response()
        }
        Err(error) if error.is::<BadInbound>() => problem(StatusCode::BAD_REQUEST, error),
        Err(error) => problem(StatusCode::BAD_GATEWAY, format_args!("{error:#}")),
    }
}

async fn open_window(State(emu): State<Emulator>, Path(recipient): Path<String>) -> StatusCode {
    emu.open_window(&recipient);
    StatusCode::NO_CONTENT
}

async fn close_window(State(emu): State<Emulator>, Path(recipient): Path<String>) -> StatusCode {
    emu.close_window(&recipient);
    StatusCode::NO_CONTENT
}
