//! Request bodies: the size limit (413), the content type (415), and JSON whose deserialisation
//! error becomes a problem detail naming the field's path (422), or a 400 for JSON that is not
//! even well formed.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, FieldError};

/// Largest request body accepted anywhere (webhooks and API).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The problem for a body that could not be read: too large (413) or cut short (400).
pub fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!("the body is larger than the {} KiB this server accepts", MAX_BODY_BYTES / 1024))
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
        let message = inner.to_string();
        // serde reports a missing field at the parent path; name the field itself.
        let field = match (message.strip_prefix("missing field `"), path.as_str()) {
            (Some(rest), ".") => rest.split('`').next().unwrap_or_default().to_owned(),
            (Some(rest), parent) => format!("{parent}.{}", rest.split('`').next().unwrap_or_default()),
            (None, ".") => "body".to_owned(),
            (None, _) => path,
        };
        let reason = message.split(" at line ").next().unwrap_or(&message).to_owned();
        ApiError::Validation(vec![FieldError::new(field, reason)])
    })
}
