//! What the framework reads from a request, and the one mapping of its rejections to problem
//! details: bodies (the size limit, 413; the content type, 415; JSON, 422 naming the field's path,
//! or 400 for JSON that is not even well formed), query strings and path parameters (422 naming
//! the parameter). Forms go through [`field_error`] too. Whatever the router itself refuses (no
//! such route, a method it does not serve) becomes a problem in
//! [`problem::framework_errors_as_problems`](super::problem::framework_errors_as_problems).

use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, FieldError};

/// Largest request body accepted anywhere (webhooks and API).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The problem for a body that could not be read: too large (413) or cut short (400).
pub fn body_rejection(e: BytesRejection) -> ApiError {
    body_rejection_within(e, MAX_BODY_BYTES)
}

/// [`body_rejection`] for an endpoint whose own limit is `limit` bytes.
pub fn body_rejection_within(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!("the body is larger than the {} KiB this endpoint accepts", limit / 1024))
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// Refuses a body that is not declared as JSON (415).
pub fn check_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_owned();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "this endpoint takes `application/json`, not {}",
            if essence.is_empty() { "a body without Content-Type".to_owned() } else { format!("`{essence}`") }
        )));
    }
    Ok(())
}

/// Deserialises JSON; a type error names the field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest(format!("the body is not valid JSON: {inner}"));
        }
        ApiError::Validation(vec![field_error(&path, &inner.to_string(), "body")])
    })
}

/// A deserialisation error at `path` (serde_path_to_error's form: `.` for the top level) as the
/// field it is about. serde reports a missing or repeated field at its parent's path, in the
/// message; the field itself is named. `whole` names the top level (`body`, `query`).
pub fn field_error(path: &str, message: &str, whole: &str) -> FieldError {
    let named = ["missing field `", "duplicate field `"].iter().find_map(|prefix| message.strip_prefix(prefix));
    let named = named.and_then(|rest| rest.split('`').next());
    let field = match (named, path) {
        (Some(name), ".") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, ".") => whole.to_owned(),
        (None, _) => path.to_owned(),
    };
    let reason = message.split(" at line ").next().unwrap_or(message);
    let reason = match named {
        Some(_) if reason.starts_with("duplicate field") => "is given more than once".to_owned(),
        Some(_) => "is required".to_owned(),
        None => reason.to_owned(),
    };
    FieldError::new(field, reason)
}

/// The query string, deserialised into `T`; a bad, repeated or missing parameter is a 422 that
/// names it (the framework's own extractor answers `text/plain`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|e| ApiError::Validation(vec![field_error(&e.path().to_string(), &e.inner().to_string(), "query")]))
    }
}

/// Path parameters, deserialised into `T`; a parameter that cannot be read is a 422 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => ApiError::field(key.as_str(), "is not valid UTF-8 once percent-decoded"),
            ErrorKind::ParseErrorAtKey { key, value, expected_type } => {
                ApiError::field(key.as_str(), format!("cannot be read as {expected_type}: {value:?}"))
            }
            ErrorKind::DeserializeError { key, value, message } => ApiError::field(key.as_str(), format!("{message}: {value:?}")),
            _ => ApiError::BadRequest(e.body_text()),
        },
        // Only a route without the parameter the handler asks for: a bug, not the client's.
        other => ApiError::Internal(other.body_text().into()),
    }
}
