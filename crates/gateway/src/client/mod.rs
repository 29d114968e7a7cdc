//! A small typed client of the gateway's own HTTP API, used by the CLI verbs (`send`, `status`,
//! `messages`, `metrics`, `bulk`): one method per endpoint, answers read into the API's
//! DTOs (and kept as raw JSON for `--json`), refusals read as RFC 9457 problem details.
//!
//! Errors: [`ClientError`] here (a problem the API answered, or no answer at all); the verbs wrap
//! it in `anyhow` like the rest of the CLI.

mod error;
mod request;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::ClientError;
pub use request::{Lookup, SendRequest};

use crate::http::dto::metrics::MetricsReport;
use crate::http::dto::{DeliveryStatusView, MessagePage, MessageResource, RedriveResult};
use crate::http::paths;

/// How long one request may take before it counts as a transport failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A successful answer: its HTTP status, whether it replays an earlier request with the same
/// idempotency key, the body as sent (for `--json`) and read as `T`.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The HTTP status (200, 201, 202).
    pub status: u16,
    /// `Idempotent-Replayed: true`: the stored answer of an earlier request with this key.
    pub replayed: bool,
    /// The body as the API sent it.
    pub raw: Value,
    /// The body, typed.
    pub body: T,
}

/// A client of one gateway, authenticated with one bearer token.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl GatewayClient {
    /// A client of the gateway at `base_url` (`http://127.0.0.1:8080`) calling with `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        let lower = base_url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(ClientError::Usage(format!("the gateway URL must start with http:// or https://, got {base_url:?}")));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("whatsapp-gateway-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Transport { url: base_url.to_owned(), source })?;
        Ok(Self { base_url: base_url.trim_end_matches('/').to_owned(), token: token.to_owned(), http })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{path}", self.base_url);
        if !query.is_empty() {
            let mut encoded = form_urlencoded::Serializer::new(String::new());
            for (name, value) in query {
                encoded.append_pair(name, value);
            }
            url.push('?');
            url.push_str(&encoded.finish());
        }
        url
    }

    /// `POST /send`, with an `Idempotency-Key` when given.
    pub async fn send(&self, request: &SendRequest, idempotency_key: Option<&str>) -> Result<Answer<MessageResource>, ClientError> {
        let url = self.url(paths::SEND, &[]);
        let mut builder = self.http.post(&url).json(request);
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        self.call(builder, &url).await
    }

    /// `GET /delivery-status?id=` or `?message_sid=`.
    pub async fn delivery_status(&self, lookup: &Lookup) -> Result<Answer<DeliveryStatusView>, ClientError> {
        let query = match lookup {
            Lookup::Id(id) => [("id", id.clone())],
            Lookup::Sid(sid) => [("message_sid", sid.clone())],
        };
        let url = self.url(paths::DELIVERY_STATUS, &query);
        self.call(self.http.get(&url), &url).await
    }

    /// `GET /messages` with the list endpoint's query parameters (`status`, `phone`, `cursor`…).
    pub async fn messages(&self, query: &[(&str, String)]) -> Result<Answer<MessagePage>, ClientError> {
        let url = self.url(paths::MESSAGES, query);
        self.call(self.http.get(&url), &url).await
    }

    /// `GET /delivery-metrics` with its query parameters (`from`, `to`, `granularity`, `to_phone`).
    pub async fn metrics(&self, query: &[(&str, String)]) -> Result<Answer<MetricsReport>, ClientError> {
        let url = self.url(paths::DELIVERY_METRICS, query);
        self.call(self.http.get(&url), &url).await
    }

    /// `POST /messages/{id}/retry`: redrive one dead-lettered message.
    pub async fn redrive(&self, id: &str) -> Result<Answer<MessageResource>, ClientError> {
        let path = paths::MESSAGE_RETRY.replace("{id}", &form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
        let url = self.url(&path, &[]);
        self.call(self.http.post(&url), &url).await
    }

    /// `POST /messages/{id}/cancel`: withdraw a message Twilio does not have yet.
    pub async fn cancel(&self, id: &str) -> Result<Answer<MessageResource>, ClientError> {
        let path = paths::MESSAGE_CANCEL.replace("{id}", &form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
        let url = self.url(&path, &[]);
        self.call(self.http.post(&url), &url).await
    }

    /// `POST /messages/retry` with its filters (`phone`, `from`, `to`, `reference`, `limit`).
    pub async fn redrive_matching(&self, query: &[(&str, String)]) -> Result<Answer<RedriveResult>, ClientError> {
        let url = self.url(paths::MESSAGES_RETRY, query);
        self.call(self.http.post(&url), &url).await
    }

    async fn call<T: DeserializeOwned>(&self, builder: reqwest::RequestBuilder, url: &str) -> Result<Answer<T>, ClientError> {
        let transport = |source| ClientError::Transport { url: url.to_owned(), source };
        let response = builder.bearer_auth(&self.token).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let replayed = header("idempotent-replayed").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
        let text = response.text().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(ClientError::from_refusal(status, &text, retry_after));
        }
        let unexpected = |reason: String| ClientError::Unexpected { status, reason };
        let raw: Value = serde_json::from_str(&text).map_err(|e| unexpected(format!("not JSON ({e})")))?;
        let body = serde_json::from_value(raw.clone()).map_err(|e| unexpected(format!("not the expected resource ({e})")))?;
        Ok(Answer { status, replayed, raw, body })
    }
}
