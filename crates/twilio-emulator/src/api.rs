//! The Messages REST API: create, fetch, update (cancel / redact), delete, and list (in
//! [`crate::list`]), behind HTTP Basic auth with the account SID and auth token.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

use crate::auth::Authenticated;
use crate::behaviour::lock;
use crate::create::CreateRequest;
use crate::error::TwilioError;
use crate::lifecycle::{self, CallbackMode, Facts};
use crate::model::{API_VERSION, Direction, Message, MessageJson, Status, new_sid, now};
use crate::{Emulator, list};

/// The REST routes, at the root.
pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/2010-04-01/Accounts/{account_sid}/Messages.json", post(create).get(list::list))
        .route("/2010-04-01/Accounts/{account_sid}/Messages/{file}", axum::routing::get(fetch).post(update).delete(delete))
        .route("/2010-04-01/{*rest}", any(unknown_resource))
        .route("/v2/Indicators/Typing.json", post(typing))
        .layer(axum::middleware::map_response(twilio_headers))
}

async fn twilio_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&new_sid("RQ")) {
        headers.insert("Twilio-Request-Id", id);
    }
    headers.insert("X-Home-Region", HeaderValue::from_static("us1"));
    headers.insert("X-Api-Domain", HeaderValue::from_static("api.twilio.com"));
    headers.insert("X-Shenanigans", HeaderValue::from_static("none"));
    response
}

async fn create(State(emu): State<Emulator>, auth: Result<Authenticated, TwilioError>, body: Bytes) -> Response {
    match create_message(&emu, auth, &body).await {
        Ok(json) => (StatusCode::CREATED, Json(json)).into_response(),
        Err(error) => {
            emu.shared.counters.create_rejected(error.status.as_u16());
            error.into_response()
        }
    }
}

async fn create_message(emu: &Emulator, auth: Result<Authenticated, TwilioError>, body: &[u8]) -> Result<MessageJson, TwilioError> {
    let shared = &emu.shared;
    auth?;
    let _slot = shared.limits.acquire()?;
    shared.limits.random_server_error()?;
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let req = CreateRequest::parse(&params)?;
    let behaviour = shared.behaviours.on_create(&req.to_e164)?;
    let sender = req.sender_key();
    shared.limits.check_sender_rate(&sender)?;

    let message = new_outbound(emu, &req);
    let facts = Facts {
        via_service: message.status == Status::Accepted,
        whatsapp: req.is_whatsapp(),
        free_form: req.is_free_form(),
        window_open: shared.windows.is_open(&req.to_e164),
    };
    let steps = lifecycle::plan(&shared.config, &behaviour, facts);
    let json = message.to_json();
    let sid = message.sid.clone();
    tracing::debug!(sid = %sid, to = %req.to, steps = steps.len(), "message created");
    lock(&shared.store).insert(message);
    shared.counters.created(&sender, &req.to_e164);
    let mode = CallbackMode { duplicate: behaviour.duplicate_callbacks, reorder: behaviour.reorder_callbacks };
    let callback_url = req.status_callback.clone().filter(|_| !behaviour.drop_callbacks);
    lifecycle::spawn(shared.clone(), sid, steps, callback_url, mode);

    let latency = behaviour.latency_ms.map_or(shared.config.latency, Duration::from_millis);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    Ok(json)
}

fn new_outbound(emu: &Emulator, req: &CreateRequest) -> Message {
    let shared = &emu.shared;
    let at = now();
    let via_service = req.from.is_none();
    let pending_from = via_service.then(|| {
        let number = &shared.config.business_number;
        if req.is_whatsapp() { format!("whatsapp:{number}") } else { number.clone() }
    });
    Message {
        sid: new_sid(if req.media_urls.is_empty() { "SM" } else { "MM" }),
        account_sid: shared.config.account_sid.clone(),
        from: req.from.clone(),
        to: req.to.clone(),
        body: req.body.clone(),
        num_media: req.media_urls.len(),
        messaging_service_sid: req.messaging_service_sid.clone().unwrap_or_else(|| shared.default_service_sid.clone()),
        status: if req.messaging_service_sid.is_some() { Status::Accepted } else { Status::Queued },
        direction: Direction::OutboundApi,
        error_code: None,
        error_message: None,
        date_created: at,
        date_updated: at,
        date_sent: None,
        status_callback: req.status_callback.clone(),
        validity_period: req.validity_period,
        pending_from,
    }
}

/// `{file}` is `SM….json`; anything else is not a resource.
fn message_sid(account_sid: &str, file: &str) -> Result<String, TwilioError> {
    file.strip_suffix(".json")
        .map(str::to_owned)
        .ok_or_else(|| TwilioError::not_found(&format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{file}")))
}

fn missing(account_sid: &str, sid: &str) -> TwilioError {
    TwilioError::not_found(&format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"))
}

async fn fetch(
    State(emu): State<Emulator>,
    _auth: Authenticated,
    Path((account_sid, file)): Path<(String, String)>,
) -> Result<Json<MessageJson>, TwilioError> {
    let sid = message_sid(&account_sid, &file)?;
    let store = lock(&emu.shared.store);
    let message = store.get(&sid).ok_or_else(|| missing(&account_sid, &sid))?;
    Ok(Json(message.to_json()))
}

/// Twilio's typing indicator (`messaging.twilio.com/v2/Indicators/Typing.json`): shows the
/// sender of incoming WhatsApp message `messageId` that a reply is being typed, and marks that
/// message read. `channel` must be `whatsapp`.
async fn typing(State(emu): State<Emulator>, _auth: Authenticated, body: Bytes) -> Result<Json<serde_json::Value>, TwilioError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    match get("channel") {
        Some("whatsapp") => {}
        Some(other) => return Err(TwilioError::bad_request(21211, format!("Invalid channel: {other} (only whatsapp)"))),
        None => return Err(TwilioError::bad_request(21201, "Missing required parameter channel in the post body")),
    }
    let sid = get("messageId").ok_or_else(|| TwilioError::bad_request(21201, "Missing required parameter messageId in the post body"))?;
    let store = lock(&emu.shared.store);
    match store.get(sid) {
        Some(m) if m.direction == Direction::Inbound => {}
        Some(_) => return Err(TwilioError::bad_request(21211, format!("{sid} is not an incoming message"))),
        None => return Err(TwilioError::not_found(&format!("/v2/Indicators/Typing.json?messageId={sid}"))),
    }
    drop(store);
    emu.shared.counters.typing(sid);
    Ok(Json(serde_json::json!({ "success": true })))
}

/// `Body=""` redacts the body; `Status=canceled` cancels a message that has not been sent.
async fn update(
    State(emu): State<Emulator>,
    _auth: Authenticated,
    Path((account_sid, file)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<MessageJson>, TwilioError> {
    let sid = message_sid(&account_sid, &file)?;
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut store = lock(&emu.shared.store);
    let message = store.get_mut(&sid).ok_or_else(|| missing(&account_sid, &sid))?;
    match (get("Status"), get("Body")) {
        (Some("canceled"), _) => {
            if !matches!(message.status, Status::Queued | Status::Accepted) {
                return Err(TwilioError::bad_request(30409, "This message cannot be canceled"));
            }
            message.status = Status::Canceled;
            message.date_updated = now();
            lifecycle::spawn_single(emu.shared.clone(), message.clone());
        }
        (Some(other), _) => {
            return Err(TwilioError::bad_request(20001, format!("Invalid Status: {other}")));
        }
        (None, Some("")) => {
            message.body.clear();
            message.date_updated = now();
        }
        _ => {
            return Err(TwilioError::bad_request(20001, "Body may only be set to an empty string (redaction)"));
        }
    }
    Ok(Json(message.to_json()))
}

async fn delete(
    State(emu): State<Emulator>,
    _auth: Authenticated,
    Path((account_sid, file)): Path<(String, String)>,
) -> Result<StatusCode, TwilioError> {
    let sid = message_sid(&account_sid, &file)?;
    lock(&emu.shared.store).remove(&sid).ok_or_else(|| missing(&account_sid, &sid))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unknown_resource(uri: axum::http::Uri) -> TwilioError {
    TwilioError::not_found(uri.path())
}
