//! The API's error type and its one mapping to HTTP: RFC 9457 problem details
//! (`application/problem+json`).
//!
//! Layers (see `docs/ARCHITECTURE.md`): handlers and extractors return [`ApiError`]; the service
//! returns [`GatewayError`], turned into `ApiError` here (an unavailable dependency is a 503 with
//! `Retry-After`); startup and the CLI use `anyhow`. A 500 tells the client nothing; its cause
//! chain is logged once, here.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::service::GatewayError;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a path (`to`, `media_urls[3]`, `metadata`).
    #[schema(example = "to")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "is not a valid phone number: \"+1415555\"")]
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request was understood but some fields are invalid (422).
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// The request could not be read at all (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A webhook without a valid Twilio signature (403).
    #[error("{0}")]
    Forbidden(String),
    /// A valid token without the scope the endpoint requires (403).
    #[error("this token lacks the `{0}` scope this operation requires (its `scope` claim lists what it may do)")]
    InsufficientScope(crate::security::Scope),
    /// Nothing at this address (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but does not serve this method (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The resource exists only in encodings the request refuses (406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The body is larger than the endpoint accepts (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not in a format this endpoint takes (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The same idempotency key is being used by a request still in progress (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many requests (429); `Retry-After` says when to come back.
    #[error("{0}")]
    TooManyRequests(String),
    /// A dependency is down (503); the client should retry after the given time.
    #[error("{0}")]
    Unavailable(String, Duration),
    /// A bug or an unexpected failure (500); details are logged, not returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How long a client is asked to wait when a dependency is down.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The shape of every error answer, for the OpenAPI document: an RFC 9457 problem detail, served as
/// `application/problem+json`. It mirrors what [`ApiError`]'s response serialises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "An RFC 9457 problem detail (`application/problem+json`): every error answer has this shape.")]
#[schema(example = json!({
    "type": "https://whatsapp-gateway.dev/problems/validation",
    "title": "Invalid request",
    "status": 422,
    "detail": "`to` is not a valid phone number: \"+1415555\"",
    "errors": [{"field": "to", "reason": "is not a valid phone number: \"+1415555\""}]
}))]
pub struct ProblemDetails {
    /// A URI naming the kind of problem: `https://whatsapp-gateway.dev/problems/{slug}`, with slug one
    /// of `validation`, `bad-request`, `unauthorized`, `invalid-signature`, `insufficient-scope`, `not-found`,
    /// `method-not-allowed`, `not-acceptable`, `payload-too-large`, `unsupported-media-type`, `conflict`, `rate-limited`, `unavailable`,
    /// `internal`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    pub kind: String,
    /// A short, fixed summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request (for a validation problem, every field problem joined).
    pub detail: String,
    /// Every invalid field (validation problems only, 422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl ApiError {
    /// The field problems of a validation error (none for any other error).
    pub fn field_errors(self) -> Vec<FieldError> {
        match self {
            Self::Validation(errors) => errors,
            _ => Vec::new(),
        }
    }

    /// A single invalid field (422).
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, reason)])
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Malformed request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "invalid-signature", "Forbidden"),
            Self::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient-scope", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Self::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "not-acceptable", "Not acceptable"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Self::Unavailable(..) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl ApiError {
    /// The problem detail this error is answered with, and its status (a 500's cause is logged
    /// here, once, and not returned).
    pub fn details(&self) -> (StatusCode, ProblemDetails) {
        let (status, slug, title) = self.parts();
        let detail = match self {
            Self::Validation(errors) => errors.iter().map(|e| format!("`{}` {}", e.field, e.reason)).collect::<Vec<_>>().join("; "),
            Self::Internal(e) => {
                tracing::error!(error = %crate::telemetry::chain(e.as_ref()), "internal error");
                "an unexpected error occurred; it has been logged".to_owned()
            }
            Self::Unavailable(text, _) => text.clone(),
            other => other.to_string(),
        };
        let errors = match self {
            Self::Validation(errors) => Some(errors.clone()),
            _ => None,
        };
        let kind = format!("https://whatsapp-gateway.dev/problems/{slug}");
        (status, ProblemDetails { kind, title: title.to_owned(), status: status.as_u16(), detail, errors })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, problem) = self.details();
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Self::Unavailable(_, after) = &self
            && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Self::InsufficientScope(scope) = &self {
            let value = format!("Bearer realm=\"whatsapp-gateway\", error=\"insufficient_scope\", scope=\"{scope}\"");
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Self::Unauthorized(reason) = &self {
            let value =
                format!("Bearer realm=\"whatsapp-gateway\", error=\"invalid_token\", error_description=\"{}\"", reason.replace('"', "'"));
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Unavailable { dependency, source } => {
                tracing::warn!(error = %crate::telemetry::chain(source.as_ref()), "{dependency} is unavailable");
                Self::Unavailable(format!("{dependency} is unavailable; retry shortly"), UNAVAILABLE_RETRY_AFTER)
            }
            GatewayError::NotFound(what) => Self::NotFound(what),
            GatewayError::Conflict { what, .. } | GatewayError::WrongStatus(what) => Self::Conflict(what),
            GatewayError::Refused { field, reason } => Self::Validation(vec![FieldError::new(field, reason)]),
            GatewayError::Internal(source) => Self::Internal(source),
        }
    }
}

impl ApiError {
    /// An unexpected failure, kept for the log.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }
}

/// Whatever the framework answers on its own — no such route (404), a method the route does not
/// serve (405; the router adds `Allow`), a body it refused before a handler ran — comes as
/// `text/plain` or with no body at all; it leaves as a problem detail like every other error.
/// Handlers' answers (problem details, JSON, TwiML, Prometheus text) pass untouched: only an error
/// status with no content type or `text/plain` is rewritten.
pub async fn framework_errors_as_problems(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // Cheap clones (a standard method is a tag, a URI shares its bytes): no allocation per request.
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let response = next.run(request).await;
    let status = response.status();
    let plain = match response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(content_type) => content_type.starts_with("text/plain"),
    };
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound(format!("no endpoint at `{}`", uri.path())),
        // The router adds `Allow` around this layer, so it is on the answer but not seen here.
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(format!(
            "`{method}` is not served at `{}`; the `Allow` header lists the methods that are",
            uri.path()
        )),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
        s if s.is_server_error() => ApiError::Internal(format!("the framework answered {s}: {text}").into()),
        _ => ApiError::BadRequest(if text.is_empty() { status.canonical_reason().unwrap_or("bad request").to_owned() } else { text }),
    };
    let mut problem = error.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}
