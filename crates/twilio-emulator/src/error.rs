//! Errors the REST API answers with, in Twilio's legacy JSON shape
//! `{code, message, more_info, status}`.
//!
//! Twilio's 2010 API does not use RFC 9457 problem details, and twilio-python raises a different
//! exception when it sees them, so the emulator keeps the legacy shape on purpose.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One REST error: HTTP status, Twilio error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Twilio error code (e.g. 21211).
    pub code: u32,
    /// Human-readable message.
    pub message: String,
    /// The extra `detail` field real 401 answers carry.
    pub detail: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    message: &'a str,
    more_info: String,
    status: u16,
}

impl TwilioError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), detail: None }
    }

    /// 400 with a validation code.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 / 20003: missing or wrong credentials.
    pub fn unauthorized() -> Self {
        Self {
            detail: Some("Your AccountSid or AuthToken was incorrect.".to_owned()),
            ..Self::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
        }
    }

    /// 404 / 20404 for the resource at `path`.
    pub fn not_found(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, 20404, format!("The requested resource {path} was not found"))
    }

    /// 429 / 20429: concurrency or rate limit.
    pub fn too_many_requests() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
    }

    /// 500 / 20500: an (injected) internal error.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 20500, "An internal server error has occurred")
    }

    /// The JSON body Twilio would send.
    pub fn body(&self) -> serde_json::Value {
        let body = Body {
            code: self.code,
            detail: self.detail.as_deref(),
            message: &self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        };
        serde_json::to_value(body).unwrap_or_default()
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Short texts for the error codes the emulator reports on messages and callbacks.
pub(crate) fn error_text(code: u32) -> &'static str {
    match code {
        30003 => "Unreachable destination handset",
        30004 => "Message blocked",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        30008 => "Unknown error",
        63003 => "Channel could not find To address",
        63016 => {
            "Failed to send freeform message because you are outside the allowed window. \
             If you are using WhatsApp, please use a Message Template."
        }
        63018 => "Rate limit exceeded for Channel",
        63024 => "Invalid message recipient",
        63032 => "We cannot send this message to this user because of a WhatsApp limitation",
        _ => "Message delivery failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_body_is_twilios_401() {
        let body = TwilioError::unauthorized().body();
        assert_eq!(
            body.to_string(),
            r#"{"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#
        );
    }

    #[test]
    fn too_many_requests_body_is_twilios_429() {
        assert_eq!(
            TwilioError::too_many_requests().body().to_string(),
            r#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#
        );
    }
}
