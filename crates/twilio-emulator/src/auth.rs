//! HTTP Basic authentication with the account SID and auth token, as Twilio's REST API does it.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;

use crate::Emulator;
use crate::error::TwilioError;

/// Proof that the request carried the account's credentials for the account in its path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authenticated;

impl FromRequestParts<Emulator> for Authenticated {
    type Rejection = TwilioError;

    async fn from_request_parts(parts: &mut Parts, state: &Emulator) -> Result<Self, Self::Rejection> {
        let config = &state.shared.config;
        let credentials = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok());
        let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
            return Err(TwilioError::unauthorized());
        };
        let path_account = parts.uri.path().split("/Accounts/").nth(1).and_then(|rest| rest.split('/').next());
        let path_ok = path_account.is_none_or(|sid| sid == config.account_sid);
        if user == config.account_sid && password == config.auth_token && path_ok { Ok(Self) } else { Err(TwilioError::unauthorized()) }
    }
}
