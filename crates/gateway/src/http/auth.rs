//! The [`Claims`] extractor: a handler that takes `Claims` requires a valid bearer token; its
//! rejection is a 401 with `WWW-Authenticate`. [`Authorized<S>`] also requires the token's scope
//! `S` (403 naming it).

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::problem::ApiError;
use crate::security::{Claims, Scope};
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

/// A scope an endpoint requires, as a type (see [`Authorized`]).
pub(super) trait RequiredScope {
    /// The scope.
    const SCOPE: Scope;
}

/// `messages:send`.
pub(super) struct SendMessages;
/// `messages:read`.
pub(super) struct ReadMessages;
/// `metrics:read`.
pub(super) struct ReadMetrics;
/// `events:manage`.
pub(super) struct ManageEvents;

impl RequiredScope for SendMessages {
    const SCOPE: Scope = Scope::MessagesSend;
}
impl RequiredScope for ReadMessages {
    const SCOPE: Scope = Scope::MessagesRead;
}
impl RequiredScope for ReadMetrics {
    const SCOPE: Scope = Scope::MetricsRead;
}
impl RequiredScope for ManageEvents {
    const SCOPE: Scope = Scope::EventsManage;
}

/// The claims of a valid bearer token that holds the scope `S`: 401 without a valid token, 403
/// (naming the scope) with one that lacks it.
pub(super) struct Authorized<S>(pub Claims, pub PhantomData<S>);

impl<S: RequiredScope> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let claims = Claims::from_request_parts(parts, state).await?;
        if !claims.allows(S::SCOPE) {
            return Err(ApiError::InsufficientScope(S::SCOPE));
        }
        Ok(Self(claims, PhantomData))
    }
}
