//! `ValidJson<T>`: a JSON body whose errors become problem details naming the field.

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON request body deserialised into `T`; a type error names the field's path.
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_owned();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "this endpoint takes `application/json`, not {}",
                if essence.is_empty() { "a body without Content-Type".to_owned() } else { format!("`{essence}`") }
            )));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(value) => Ok(Self(value)),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(ApiError::BadRequest(format!("the body is not valid JSON: {inner}")));
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
                Err(ApiError::Validation(vec![FieldError::new(field, reason)]))
            }
        }
    }
}
