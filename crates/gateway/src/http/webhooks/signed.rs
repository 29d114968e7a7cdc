//! `TwilioSigned<F>`: an extractor that checks `X-Twilio-Signature` over the raw request before
//! anything is parsed, then reads the form `F` from the parameters that were signed.
//!
//! The URL checked is the one Twilio called: `PUBLIC_BASE_URL` + the request's path + its raw query
//! string (kept byte for byte). Every received form parameter is signed over, known or not. A
//! JSON body is covered by the URL's `bodySHA256` parameter, and its top-level fields are read as
//! the form's parameters.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::http::extract::body_rejection;
use crate::http::problem::ApiError;
use crate::http::rate_limit::webhook_refusal;
use crate::state::AppState;
use crate::telemetry::metrics;

/// A webhook request whose signature is valid, read as the form `F`.
#[derive(Debug, Clone)]
pub struct TwilioSigned<F> {
    /// The form.
    pub form: F,
    /// The raw query string.
    pub query: Option<String>,
    /// Twilio's `I-Twilio-Idempotency-Token`: the same on every retry of one webhook.
    pub idempotency_token: Option<String>,
}

impl<F> TwilioSigned<F> {
    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

impl<F: DeserializeOwned + Send> FromRequest<AppState> for TwilioSigned<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        match check(req, state).await {
            Ok((params, query, idempotency_token)) => {
                let form = read_form(&params).map_err(IntoResponse::into_response)?;
                Ok(Self { form, query, idempotency_token })
            }
            Err(error @ ApiError::Forbidden(_)) => {
                // Only refused requests count against the client's IP.
                match webhook_refusal(state, &headers, peer).await {
                    Some(too_many) => Err(too_many),
                    None => Err(error.into_response()),
                }
            }
            Err(error) => Err(error.into_response()),
        }
    }
}

/// Reads `F` from the signed parameters; a bad value names its parameter. A repeated parameter
/// counts with its first value (Twilio sends each once).
fn read_form<F: DeserializeOwned>(params: &[(String, String)]) -> Result<F, ApiError> {
    let mut seen = std::collections::HashSet::new();
    let firsts = params.iter().filter(|(name, _)| seen.insert(name.as_str()));
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(firsts).finish();
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(deserializer)
        .map_err(|e| ApiError::Validation(vec![crate::http::extract::field_error(&e.path().to_string(), &e.inner().to_string(), "body")]))
}

type Checked = (Vec<(String, String)>, Option<String>, Option<String>);

async fn check(req: Request, state: &AppState) -> Result<Checked, ApiError> {
    let config = &state.signatures;
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let with_path = |base: &str| match &query {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    };
    let url = with_path(&config.public_base_url);
    // Behind a trusted proxy, the URL it reports is also one Twilio may have signed.
    let forwarded = state.transport.forwarded_base(req.headers()).map(|base| with_path(&base)).filter(|u| *u != url);
    let signature = req.headers().get(twilio_signature::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let idempotency_token = req
        .headers()
        .get("i-twilio-idempotency-token")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.chars().filter(|c| c.is_ascii_graphic()).take(128).collect::<String>())
        .filter(|t| !t.is_empty());
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let body = Bytes::from_request(req, state).await.map_err(body_rejection)?;
    let Some(signature) = signature else {
        metrics::webhook_rejected("missing_signature");
        return Err(ApiError::Forbidden(format!("missing X-Twilio-Signature header (checked URL: {url})")));
    };
    let is_form = content_type.starts_with("application/x-www-form-urlencoded") || (content_type.is_empty() && !body.starts_with(b"{"));
    let params: Vec<(String, String)> = if is_form { form_urlencoded::parse(&body).into_owned().collect() } else { Vec::new() };
    let valid = std::iter::once(&url).chain(forwarded.as_ref()).any(|candidate| {
        config.tokens.iter().any(|token| {
            let token = token.expose_secret().as_bytes();
            if is_form {
                twilio_signature::validate(token, candidate, twilio_signature::Payload::Form(&params), &signature)
            } else {
                // JSON bodies are covered by the URL's bodySHA256 parameter.
                twilio_signature::validate::<&str, &str>(token, candidate, twilio_signature::Payload::Body(&body), &signature)
            }
        })
    });
    if !valid {
        metrics::webhook_rejected("invalid_signature");
        tracing::warn!(url = %url, "rejected a webhook with an invalid Twilio signature");
        return Err(ApiError::Forbidden(format!(
            "invalid X-Twilio-Signature for {url}; if Twilio calls another URL, set PUBLIC_BASE_URL to it"
        )));
    }
    let params = if is_form {
        params
    } else {
        // A JSON webhook's top-level fields, as text, so both forms are read alike.
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
            .map(|map| map.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
            .unwrap_or_default()
    };
    Ok((params, query, idempotency_token))
}
