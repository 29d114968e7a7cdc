//! Event webhooks over the API: the application's endpoints (`/api/v1/events/endpoints…`: create,
//! list, change, disable, see and rotate the secret, redrive, attempts) and its events
//! (`/api/v1/events…`: list, one with its deliveries and attempts, redrive).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{Authorized, ManageEvents};
use super::dto::rfc3339;
use super::extract::{Path, Query, body_rejection, check_json_content_type, parse_json};
use super::paths;
use super::problem::{ApiError, FieldError, ProblemDetails};
use crate::domain::{EventType, EventTypes, MessageId, now_ms};
use crate::security::WebhookSecret;
use crate::state::AppState;
use crate::store::events::{DeliveryRecord, EndpointPatch, EndpointRecord, EventAttemptRecord, EventFilter, EventRecord};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::EVENT_ENDPOINTS, get(list_endpoints).post(create_endpoint))
        .route(paths::EVENT_ENDPOINT, get(get_endpoint).patch(update_endpoint))
        .route(paths::EVENT_ENDPOINT_SECRET, get(endpoint_secret))
        .route(paths::EVENT_ENDPOINT_ROTATE, post(rotate_secret))
        .route(paths::EVENT_ENDPOINT_REDRIVE, post(redrive_endpoint))
        .route(paths::EVENT_ENDPOINT_ATTEMPTS, get(endpoint_attempts))
        .route(paths::EVENTS, get(list_events))
        .route(paths::EVENT, get(get_event))
        .route(paths::EVENT_REDRIVE, post(redrive_event))
}

/// `POST /events/endpoints` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// Where events are posted (`http` or `https`).
    #[schema(example = "https://app.example.com/hooks/whatsapp")]
    pub url: String,
    /// The events it wants (default every type).
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// A note (at most 500 characters; blank clears it).
    #[serde(default)]
    pub description: Option<String>,
    /// Its signing secret, `whsec_` and base64 of 24 to 64 bytes (default: one is generated and
    /// shown in the answer).
    #[serde(default)]
    pub secret: Option<String>,
}

/// `PATCH /events/endpoints/{id}` body: each field given is changed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    /// A new URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New event types.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// A new note (an empty text clears it).
    #[serde(default)]
    pub description: Option<String>,
    /// `false` disables it; `true` enables it again (an endpoint disabled for failing, too) and
    /// forgets its failures. Events that occur while it is disabled are not kept for it.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `POST /events/endpoints/{id}/rotate-secret` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// The new secret (default: generated).
    #[serde(default)]
    pub secret: Option<String>,
    /// How long the old secret goes on signing beside the new one, in seconds (0…604800;
    /// default `EVENTS_ROTATION_GRACE_MS`).
    #[serde(default, deserialize_with = "super::dto::number::optional_integer")]
    pub grace_s: Option<i64>,
}

/// An event endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// Its id (`ep_…`; `config-events` for `EVENTS_URL`, `config-inbound-forward` for `INBOUND_FORWARD_URL`).
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// A note.
    pub description: Option<String>,
    /// The events it wants.
    pub event_types: Vec<EventType>,
    /// Whether events go to it.
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// Since when every attempt to it failed.
    pub failing_since: Option<String>,
    /// `api` (managed here) or `config` (from the configuration).
    pub origin: String,
    /// When the previous secret stops signing, during a rotation.
    pub previous_secret_valid_until: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// The signing secret: shown when the endpoint is created or its secret rotated (and at
    /// `GET …/secret`), never in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointView {
    fn of(e: EndpointRecord, with_secret: bool) -> Self {
        let now = now_ms();
        Self {
            previous_secret_valid_until: crate::service::events::previous_secret_until(&e, now).map(rfc3339),
            secret: with_secret.then(|| e.secret.clone()),
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types.0.iter().collect(),
            enabled: e.enabled.0,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(rfc3339),
            origin: e.origin,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// Every endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub endpoints: Vec<EndpointView>,
}

/// An endpoint's signing secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointSecret {
    /// The endpoint.
    pub id: String,
    /// The current secret.
    pub secret: String,
    /// The previous one, while it still signs.
    pub previous_secret: Option<String>,
    /// Until when.
    pub previous_secret_valid_until: Option<String>,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The endpoint.
    pub endpoint_id: String,
    /// `pending`, `delivered` or `failed` (given up; redrive to try again).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<String>,
    /// The last attempt.
    pub last_attempt_at: Option<String>,
    /// The last answer's status code.
    pub last_status_code: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<String>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            endpoint_id: d.endpoint_id,
            status: d.status,
            attempts: d.attempts,
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            delivered_at: d.delivered_at.map(rfc3339),
        }
    }
}

/// An event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventView {
    /// `evt_…`: the `webhook-id` of every delivery of it.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: Option<EventType>,
    /// The message it is about.
    pub message_id: Option<MessageId>,
    /// Its place among the message's events (1, 2, …): deliveries are concurrent and retried, so
    /// order events by this.
    pub sequence: i64,
    /// When it was stored.
    pub created_at: String,
    /// The body posted: `type`, `timestamp`, `data`.
    pub payload: serde_json::Value,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryView>,
}

impl EventView {
    fn of(e: EventRecord, deliveries: Vec<DeliveryRecord>) -> Self {
        Self {
            payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
            id: e.id,
            event_type: e.event_type.0,
            message_id: e.message_id,
            sequence: e.seq,
            created_at: rfc3339(e.created_at),
            deliveries: deliveries.into_iter().map(Into::into).collect(),
        }
    }
}

/// A page of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<EventView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventAttemptView {
    /// The event.
    pub event_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its number.
    pub attempt: i64,
    /// When.
    pub attempted_at: String,
    /// The answer's status code (absent: no answer).
    pub status_code: Option<i64>,
    /// How long it took.
    pub latency_ms: i64,
    /// The start of the answer's body (1 KiB at most).
    pub response: Option<String>,
    /// Why it failed without an answer.
    pub error: Option<String>,
}

impl From<EventAttemptRecord> for EventAttemptView {
    fn from(a: EventAttemptRecord) -> Self {
        Self {
            event_id: a.event_id,
            endpoint_id: a.endpoint_id,
            attempt: a.attempt,
            attempted_at: rfc3339(a.attempted_at),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response: a.response,
            error: a.error,
        }
    }
}

/// An event with every attempt to deliver it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventDetailView {
    /// The event.
    #[serde(flatten)]
    pub event: EventView,
    /// Every attempt, newest first.
    pub attempts: Vec<EventAttemptView>,
}

/// Attempts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventAttemptList {
    /// Newest first.
    pub attempts: Vec<EventAttemptView>,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventRedriveResult {
    /// Failed deliveries made pending again, due now.
    pub redriven: u64,
}

/// `GET /events` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Only this message's events.
    message_id: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events for this endpoint.
    endpoint_id: Option<String>,
    /// Only events with a delivery in this status: `pending`, `delivered`, `failed`.
    status: Option<String>,
    /// Older than this event (the previous page's `next_cursor`).
    before: Option<String>,
    /// Page size, 1…500 (default 50).
    #[serde(default, deserialize_with = "super::dto::number::optional_query_integer")]
    limit: Option<i64>,
}

/// `…/attempts` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AttemptsQuery {
    /// How many, 1…1000 (default 100).
    #[serde(default, deserialize_with = "super::dto::number::optional_query_integer")]
    limit: Option<i64>,
}

/// `POST /events/{id}/redrive` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RedriveEventQuery {
    /// Only its delivery to this endpoint (default: every one that failed).
    endpoint_id: Option<String>,
}

const MAX_DESCRIPTION: usize = 500;
const MAX_URL: usize = 2048;

/// Whether `url` is one the document's `ENDPOINT_URL_PATTERN` describes: http(s), a host name
/// (or IPv4 address), an optional port, an optional path, query or fragment of visible ASCII.
fn is_endpoint_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-') && !l.ends_with('-')
    };
    let port_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'))
            && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
    };
    host.split('.').all(label_ok) && port.is_none_or(port_ok) && tail.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

fn endpoint_url(field: &str, url: &str) -> Result<String, FieldError> {
    if url.chars().count() > MAX_URL {
        return Err(FieldError::new(field, format!("is longer than {MAX_URL} characters")));
    }
    if !is_endpoint_url(url) {
        return Err(FieldError::new(
            field,
            format!(
                "must be an http:// or https:// URL with a host name or IPv4 address, an optional port and path, no credentials \
                 and no whitespace: {:?}",
                truncated(url)
            ),
        ));
    }
    Ok(url.to_owned())
}

fn event_types(field: &str, types: &[String]) -> Result<EventTypes, Vec<FieldError>> {
    if types.is_empty() {
        return Err(vec![FieldError::new(field, "must name at least one event type")]);
    }
    let mut errors = Vec::new();
    let mut set = EventTypes::none();
    for (i, t) in types.iter().enumerate() {
        match t.parse::<EventType>() {
            Ok(t) => set = set.with(t),
            Err(e) => errors.push(FieldError::new(format!("{field}[{i}]"), e.to_string())),
        }
    }
    if errors.is_empty() { Ok(set) } else { Err(errors) }
}

fn description(text: Option<String>) -> Result<Option<String>, FieldError> {
    match text {
        Some(t) if t.chars().count() > MAX_DESCRIPTION => {
            Err(FieldError::new("description", format!("is longer than {MAX_DESCRIPTION} characters")))
        }
        other => Ok(other.filter(|t| !t.trim().is_empty())),
    }
}

fn secret(text: Option<&str>) -> Result<Option<WebhookSecret>, FieldError> {
    text.map(|t| WebhookSecret::parse(t).map_err(|e| FieldError::new("secret", e.to_string()))).transpose()
}

fn endpoint_id(value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(value.to_owned()) } else { Err(ApiError::field("endpoint_id", format!("is not an endpoint id: {:?}", truncated(value)))) }
}

fn event_id(field: &str, value: &str) -> Result<String, ApiError> {
    let ok = value.len() == 36 && value.starts_with("evt_") && value[4..].bytes().all(|b| b.is_ascii_hexdigit());
    // Ids are stored in lower case.
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(ApiError::field(field, format!("is not an event id (evt_ and 32 hex digits): {:?}", truncated(value))))
    }
}

fn truncated(value: &str) -> String {
    value.chars().take(64).collect()
}

/// The body as `T`, refusing anything but a JSON object (serde would also take an array of the
/// fields in order).
fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: T = parse_json(body)?;
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    Ok(value)
}

fn collect<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// Adds an event endpoint.
#[utoipa::path(
    post,
    path = "/api/v1/events/endpoints",
    tag = "events",
    operation_id = "create_event_endpoint",
    summary = "Add an event endpoint",
    description = "Events of the types it wants are posted to `url` from now on, signed the Standard Webhooks way \
                   (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`) \
                   with its secret, which the answer shows (and `GET …/secret` later).",
    security(("bearer" = ["events:manage"])),
    request_body(content = CreateEndpointRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the answer carries its secret.", body = EndpointView),
        (status = 400, description = "The body is not JSON.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid; the problem names it.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn create_endpoint(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<EndpointView>), ApiError> {
    check_json_content_type(&headers)?;
    let request: CreateEndpointRequest = parse_object(&body.map_err(body_rejection)?)?;
    let mut errors = Vec::new();
    let url = collect(&mut errors, endpoint_url("url", &request.url));
    let types = match request.event_types.as_deref().map(|t| event_types("event_types", t)) {
        None => Some(EventTypes::all()),
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            errors.extend(e);
            None
        }
    };
    let description = collect(&mut errors, description(request.description));
    let secret = collect(&mut errors, secret(request.secret.as_deref()));
    let (Some(url), Some(types), Some(description), Some(secret)) = (url, types, description, secret) else {
        return Err(ApiError::Validation(errors));
    };
    let created = state.gateway.create_endpoint(url, description, types, secret).await?;
    Ok((StatusCode::CREATED, Json(EndpointView::of(created, true))))
}

/// Lists the event endpoints.
#[utoipa::path(
    get,
    path = "/api/v1/events/endpoints",
    tag = "events",
    operation_id = "list_event_endpoints",
    security(("bearer" = ["events:manage"])),
    responses(
        (status = 200, description = "Every endpoint, oldest first (secrets not shown).", body = EndpointList),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn list_endpoints(State(state): State<AppState>, _claims: Authorized<ManageEvents>) -> Result<Json<EndpointList>, ApiError> {
    let endpoints = state.gateway.endpoints().await?;
    Ok(Json(EndpointList { endpoints: endpoints.into_iter().map(|e| EndpointView::of(e, false)).collect() }))
}

/// Fetches one event endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/events/endpoints/{endpoint_id}",
    tag = "events",
    operation_id = "get_event_endpoint",
    security(("bearer" = ["events:manage"])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint (its secret not shown).", body = EndpointView),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No endpoint with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`endpoint_id` is not an endpoint id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_endpoint(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let id = endpoint_id(&id)?;
    Ok(Json(EndpointView::of(state.gateway.endpoint(&id).await?, false)))
}

/// Changes an event endpoint: its URL, types or note; disables or enables it.
#[utoipa::path(
    patch,
    path = "/api/v1/events/endpoints/{endpoint_id}",
    tag = "events",
    operation_id = "update_event_endpoint",
    summary = "Change, disable or enable an event endpoint",
    description = "Each field given is changed. `enabled: true` enables an endpoint disabled by hand or for failing \
                   (`EVENTS_DISABLE_AFTER_MS`) and forgets its failures; its failed deliveries can then be redriven. \
                   A configured endpoint (`origin: config`) can be disabled or enabled, not moved.",
    security(("bearer" = ["events:manage"])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id.")),
    request_body(content = UpdateEndpointRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint as it is now.", body = EndpointView),
        (status = 400, description = "The body is not JSON.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No endpoint with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or the endpoint comes from the configuration; the problem names the field.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn update_endpoint(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<EndpointView>, ApiError> {
    let id = endpoint_id(&id)?;
    check_json_content_type(&headers)?;
    let request: UpdateEndpointRequest = parse_object(&body.map_err(body_rejection)?)?;
    let mut errors = Vec::new();
    let url = request.url.as_deref().and_then(|u| collect(&mut errors, endpoint_url("url", u)));
    let types = match request.event_types.as_deref().map(|t| event_types("event_types", t)) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            errors.extend(e);
            None
        }
    };
    let described = request.description.is_some();
    let description = collect(&mut errors, description(request.description)).filter(|_| described);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let patch =
        EndpointPatch { url, description: described.then_some(description.flatten()), event_types: types, enabled: request.enabled };
    Ok(Json(EndpointView::of(state.gateway.update_endpoint(&id, &patch).await?, false)))
}

/// Shows an event endpoint's signing secrets.
#[utoipa::path(
    get,
    path = "/api/v1/events/endpoints/{endpoint_id}/secret",
    tag = "events",
    operation_id = "get_event_endpoint_secret",
    security(("bearer" = ["events:manage"])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The current secret, and the previous one while it still signs.", body = EndpointSecret),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No endpoint with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`endpoint_id` is not an endpoint id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn endpoint_secret(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
) -> Result<Json<EndpointSecret>, ApiError> {
    let id = endpoint_id(&id)?;
    let e = state.gateway.endpoint(&id).await?;
    let until = crate::service::events::previous_secret_until(&e, now_ms());
    Ok(Json(EndpointSecret {
        id: e.id,
        secret: e.secret,
        previous_secret: until.and(e.previous_secret),
        previous_secret_valid_until: until.map(rfc3339),
    }))
}

/// Gives an event endpoint a new signing secret.
#[utoipa::path(
    post,
    path = "/api/v1/events/endpoints/{endpoint_id}/rotate-secret",
    tag = "events",
    operation_id = "rotate_event_endpoint_secret",
    summary = "Rotate an event endpoint's secret",
    description = "The new secret signs from now on; the old one goes on signing beside it (two `v1,` signatures in \
                   `webhook-signature`) for `grace_s` seconds, so the application can switch without refusing a delivery.",
    security(("bearer" = ["events:manage"])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id.")),
    request_body(content = RotateSecretRequest, content_type = "application/json", description = "Optional."),
    responses(
        (status = 200, description = "The endpoint, with its new secret.", body = EndpointView),
        (status = 400, description = "The body is not JSON.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No endpoint with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not `application/json`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or the secret comes from `EVENTS_SECRET`; the problem names the field.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn rotate_secret(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<EndpointView>, ApiError> {
    let id = endpoint_id(&id)?;
    let body = body.map_err(body_rejection)?;
    let request: RotateSecretRequest = if body.is_empty() {
        RotateSecretRequest::default()
    } else {
        check_json_content_type(&headers)?;
        parse_object(&body)?
    };
    let mut errors = Vec::new();
    let secret = collect(&mut errors, secret(request.secret.as_deref()));
    if let Some(grace) = request.grace_s
        && !(0..=604_800).contains(&grace)
    {
        errors.push(FieldError::new("grace_s", format!("must be 0 to 604800 seconds, got {grace}")));
    }
    let Some(secret) = secret.filter(|_| errors.is_empty()) else { return Err(ApiError::Validation(errors)) };
    let rotated = state.gateway.rotate_endpoint_secret(&id, secret, request.grace_s.map(|s| s * 1000)).await?;
    Ok(Json(EndpointView::of(rotated, true)))
}

/// Delivers an endpoint's failed events again.
#[utoipa::path(
    post,
    path = "/api/v1/events/endpoints/{endpoint_id}/redrive",
    tag = "events",
    operation_id = "redrive_event_endpoint",
    summary = "Redrive an endpoint's failed events",
    description = "Every delivery to this endpoint that was given up (`failed`) becomes pending again, due now, with a \
                   fresh `EVENTS_MAX_AGE_MS`. A disabled endpoint must be enabled first for them to go out.",
    security(("bearer" = ["events:manage"])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "How many deliveries were redriven.", body = EventRedriveResult),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No endpoint with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`endpoint_id` is not an endpoint id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn redrive_endpoint(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
) -> Result<Json<EventRedriveResult>, ApiError> {
    let id = endpoint_id(&id)?;
    Ok(Json(EventRedriveResult { redriven: state.gateway.redrive_endpoint(&id).await? }))
}

/// An event endpoint's latest delivery attempts.
#[utoipa::path(
    get,
    path = "/api/v1/events/endpoints/{endpoint_id}/attempts",
    tag = "events",
    operation_id = "list_event_endpoint_attempts",
    security(("bearer" = ["events:manage"])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id."), AttemptsQuery),
    responses(
        (status = 200, description = "Attempts, newest first: time, status code, latency, the start of the answer.", body = EventAttemptList),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No endpoint with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid; the problem names it.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn endpoint_attempts(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
    Query(query): Query<AttemptsQuery>,
) -> Result<Json<EventAttemptList>, ApiError> {
    let id = endpoint_id(&id)?;
    let limit = bounded("limit", query.limit, 100, 1000)?;
    let attempts = state.gateway.endpoint_attempts(&id, limit).await?;
    Ok(Json(EventAttemptList { attempts: attempts.into_iter().map(Into::into).collect() }))
}

fn bounded(field: &str, value: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::field(field, format!("must be 1 to {max}, got {v}"))),
    }
}

/// Lists events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "list_events",
    security(("bearer" = ["events:manage"])),
    params(EventsQuery),
    responses(
        (status = 200, description = "Events with their deliveries, newest first.", body = EventPage),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid; the problem names it.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let mut errors = Vec::new();
    let message_id = query.message_id.as_deref().and_then(|v| {
        let parsed = (v.len() == 36).then(|| v.parse::<MessageId>().ok()).flatten();
        if parsed.is_none() {
            errors.push(FieldError::new("message_id", format!("is not a message id (a hyphenated UUID): {:?}", truncated(v))));
        }
        parsed
    });
    let event_type = query
        .event_type
        .as_deref()
        .and_then(|t| t.parse::<EventType>().map_err(|e| errors.push(FieldError::new("type", e.to_string()))).ok());
    if let Some(status) = &query.status
        && !matches!(status.as_str(), "pending" | "delivered" | "failed")
    {
        errors.push(FieldError::new("status", format!("must be pending, delivered or failed, got {:?}", truncated(status))));
    }
    if let Some(endpoint) = &query.endpoint_id
        && let Err(ApiError::Validation(e)) = endpoint_id(endpoint)
    {
        errors.extend(e);
    }
    let before = match query.before.as_deref().map(|b| event_id("before", b)) {
        Some(Ok(before)) => Some(before),
        Some(Err(ApiError::Validation(e))) => {
            errors.extend(e);
            None
        }
        _ => None,
    };
    let limit = match bounded("limit", query.limit, 50, 500) {
        Ok(limit) => limit,
        Err(ApiError::Validation(e)) => {
            errors.extend(e);
            50
        }
        Err(e) => return Err(e),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let filter = EventFilter { message_id, event_type, endpoint_id: query.endpoint_id, delivery_status: query.status, before, limit };
    let events = state.gateway.events(&filter).await?;
    let next_cursor = (events.len() as i64 == limit).then(|| events.last().map(|(e, _)| e.id.clone())).flatten();
    Ok(Json(EventPage { events: events.into_iter().map(|(e, d)| EventView::of(e, d)).collect(), next_cursor }))
}

/// Fetches one event, its deliveries and every attempt.
#[utoipa::path(
    get,
    path = "/api/v1/events/{event_id}",
    tag = "events",
    operation_id = "get_event",
    security(("bearer" = ["events:manage"])),
    params(("event_id" = String, Path, description = "The event's id (`evt_…`).")),
    responses(
        (status = 200, description = "The event, its deliveries and every attempt.", body = EventDetailView),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No event with this id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`event_id` is not an event id.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn get_event(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
) -> Result<Json<EventDetailView>, ApiError> {
    let id = event_id("event_id", &id)?;
    let detail = state.gateway.event(&id).await?;
    Ok(Json(EventDetailView {
        event: EventView::of(detail.event, detail.deliveries),
        attempts: detail.attempts.into_iter().map(Into::into).collect(),
    }))
}

/// Delivers one event again.
#[utoipa::path(
    post,
    path = "/api/v1/events/{event_id}/redrive",
    tag = "events",
    operation_id = "redrive_event",
    summary = "Redrive an event",
    description = "Its failed deliveries (to `endpoint_id` only, if given) become pending again, due now, with a fresh \
                   `EVENTS_MAX_AGE_MS`. It keeps its id, so a receiver that already has it can drop the repeat.",
    security(("bearer" = ["events:manage"])),
    params(("event_id" = String, Path, description = "The event's id (`evt_…`)."), RedriveEventQuery),
    responses(
        (status = 200, description = "How many deliveries were redriven (0: none had failed).", body = EventRedriveResult),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `events:manage`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No event with this id, or it was not for that endpoint.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid; the problem names it.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn redrive_event(
    State(state): State<AppState>,
    _claims: Authorized<ManageEvents>,
    Path(id): Path<String>,
    Query(query): Query<RedriveEventQuery>,
) -> Result<Json<EventRedriveResult>, ApiError> {
    let id = event_id("event_id", &id)?;
    let endpoint = match &query.endpoint_id {
        Some(e) => Some(endpoint_id(e).map_err(|_| ApiError::field("endpoint_id", format!("is not an endpoint id: {:?}", truncated(e))))?),
        None => None,
    };
    Ok(Json(EventRedriveResult { redriven: state.gateway.redrive_event(&id, endpoint.as_deref()).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_http_with_a_host_and_no_credentials_or_whitespace() {
        for ok in [
            "https://app.example.com/hooks/whatsapp",
            "http://127.0.0.1:37307/hook",
            "HTTPS://A-B.example:443",
            "http://localhost:0/?x=1#f",
            "http://h:65535",
        ] {
            assert!(is_endpoint_url(ok), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "https://",
            "https://user:pass@example.com/",
            "https://-a.example.com",
            "https://a..b",
            "https://a.example.com:65536",
            "https://a.example.com:080",
            "https://a.example.com/with space",
            " https://a.example.com",
            "https://[::1]/",
            "https://exa_mple.com",
        ] {
            assert!(!is_endpoint_url(bad), "{bad}");
        }
    }
}
