//! The [`Claims`] extractor: a handler that takes `Claims` requires a valid bearer token; its
//! rejection is a 401 with `WWW-Authenticate`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::problem::ApiError;
use crate::security::Claims;
use crate::state::AppState;

impl FromRequestParts<AppState> for Claims {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Already verified by the rate limiter on the way in (only it inserts `Claims`).
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(claims.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("an `Authorization: Bearer <token>` header is required".into()))?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
        state.jwt.verify(token).map_err(|e| ApiError::Unauthorized(e.0))
    }
}
