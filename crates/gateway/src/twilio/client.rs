//! A thin client for Twilio's Messages API (`/2010-04-01/Accounts/{sid}/Messages.json`).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::MessageSid;
use crate::domain::error_codes::{ErrorClass, classify_code};

/// The Messages API client.
#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth_token: SecretString,
}

impl std::fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioClient").field("base_url", &self.base_url).field("account_sid", &self.account_sid).finish_non_exhaustive()
    }
}

/// A create request: `To`, `From`, and the content.
#[derive(Debug, Clone, Default)]
pub struct CreateMessage {
    /// `whatsapp:+…` recipient.
    pub to: String,
    /// `whatsapp:+…` sender (`From`)…
    pub from: Option<String>,
    /// …or the Messaging Service that picks one (`MessagingServiceSid`).
    pub messaging_service_sid: Option<String>,
    /// Text.
    pub body: Option<String>,
    /// Media URLs (sent as repeated `MediaUrl`).
    pub media_urls: Vec<String>,
    /// Template SID.
    pub content_sid: Option<String>,
    /// Template variables (JSON text).
    pub content_variables: Option<String>,
    /// Where Twilio posts status changes.
    pub status_callback: Option<String>,
    /// Seconds the message may wait in Twilio's queue (`ValidityPeriod`, 1 … 36000).
    pub validity_period: Option<i64>,
}

/// The parts of Twilio's message resource the gateway reads.
#[derive(Debug, Clone, Deserialize)]
pub struct TwilioMessage {
    /// `SM…` / `MM…`.
    pub sid: MessageSid,
    /// Twilio's status.
    pub status: String,
    /// Recipient.
    #[serde(default)]
    pub to: Option<String>,
    /// Sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Text.
    #[serde(default)]
    pub body: Option<String>,
    /// RFC 2822 creation time.
    #[serde(default)]
    pub date_created: Option<String>,
    /// RFC 2822 time of the last change (of its status, mostly).
    #[serde(default)]
    pub date_updated: Option<String>,
    /// The Messaging Service it went through, if any.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Error code, if failed.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// Error description, if failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

impl TwilioMessage {
    /// `date_updated` as Unix milliseconds, if Twilio gave a readable one.
    pub fn updated_at_ms(&self) -> Option<i64> {
        rfc2822_ms(self.date_updated.as_deref()?)
    }

    /// `date_created` as Unix milliseconds, if Twilio gave a readable one.
    pub fn created_at_ms(&self) -> Option<i64> {
        rfc2822_ms(self.date_created.as_deref()?)
    }
}

fn rfc2822_ms(value: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[derive(Debug, Deserialize)]
struct ListPage {
    messages: Vec<TwilioMessage>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Why a call to Twilio did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Twilio answered with an error.
    #[error("Twilio answered HTTP {status}{}: {message}", code.map(|c| format!(" code {c}")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// Twilio error code.
        code: Option<i64>,
        /// Twilio's message.
        message: String,
    },
    /// The request never reached Twilio (connection refused, DNS…): safe to retry.
    #[error("could not reach Twilio: {0}")]
    Unreachable(String),
    /// The request may have reached Twilio but no usable answer came back (timeout, cut
    /// connection, unreadable body): the message may exist at Twilio.
    #[error("no answer from Twilio: {0}")]
    NoAnswer(String),
}

impl SendError {
    /// Whether to retry, and whether the outcome is unknown.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api { status, code, .. } => classify_code(*status, *code),
            Self::Unreachable(_) | Self::NoAnswer(_) => ErrorClass::Retryable,
        }
    }
}

impl TwilioClient {
    /// A client for `account_sid` at `base_url` (Twilio, or an emulator).
    pub fn new(base_url: &str, account_sid: &str, auth_token: SecretString, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("whatsapp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_owned(), account_sid: account_sid.to_owned(), auth_token })
    }

    /// The account SID.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    fn messages_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base_url, self.account_sid)
    }

    /// `POST …/Messages.json`.
    pub async fn create_message(&self, req: &CreateMessage) -> Result<TwilioMessage, SendError> {
        let mut form: Vec<(&str, &str)> = vec![("To", &req.to)];
        if let Some(from) = &req.from {
            form.push(("From", from));
        }
        if let Some(sid) = &req.messaging_service_sid {
            form.push(("MessagingServiceSid", sid));
        }
        if let Some(body) = &req.body {
            form.push(("Body", body));
        }
        for url in &req.media_urls {
            form.push(("MediaUrl", url));
        }
        if let Some(sid) = &req.content_sid {
            form.push(("ContentSid", sid));
        }
        if let Some(vars) = &req.content_variables {
            form.push(("ContentVariables", vars));
        }
        if let Some(cb) = &req.status_callback {
            form.push(("StatusCallback", cb));
        }
        let validity = req.validity_period.map(|s| s.to_string());
        if let Some(validity) = &validity {
            form.push(("ValidityPeriod", validity));
        }
        let request = self.http.post(self.messages_url()).basic_auth(&self.account_sid, Some(self.auth_token.expose_secret())).form(&form);
        self.execute(request).await
    }

    /// `GET …/Messages/{sid}.json`: the message as Twilio has it now; `None` if Twilio has no such
    /// message (deleted, or never created).
    pub async fn fetch_message(&self, sid: &MessageSid) -> Result<Option<TwilioMessage>, SendError> {
        let url = format!("{}/2010-04-01/Accounts/{}/Messages/{}.json", self.base_url, self.account_sid, encode(sid.as_str()));
        let request = self.http.get(url).basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()));
        match self.execute(request).await {
            Ok(message) => Ok(Some(message)),
            Err(SendError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Messages to `to` (from `from`, when given), newest first, following pages (at most 5 pages of 100).
    pub async fn list_messages(&self, to: &str, from: Option<&str>) -> Result<Vec<TwilioMessage>, SendError> {
        let mut url = format!("{}?To={}&PageSize=100", self.messages_url(), encode(to));
        if let Some(from) = from {
            url.push_str(&format!("&From={}", encode(from)));
        }
        let mut found = Vec::new();
        for _ in 0..5 {
            let request = self.http.get(&url).basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()));
            let page: ListPage = self.execute(request).await?;
            found.extend(page.messages);
            match page.next_page_uri {
                Some(next) => url = format!("{}{}", self.base_url, next),
                None => break,
            }
        }
        Ok(found)
    }

    /// Twilio's typing indicator: `POST https://messaging.twilio.com/v2/Indicators/Typing.json`
    /// with `channel=whatsapp&messageId=SM…` (an incoming message), which shows its sender that
    /// a reply is being typed and marks it read. Against an emulator (any other base URL) the
    /// same path on its host.
    pub async fn typing_indicator(&self, sid: &MessageSid) -> Result<(), SendError> {
        let base = if self.base_url.contains("api.twilio.com") {
            self.base_url.replace("api.twilio.com", "messaging.twilio.com")
        } else {
            self.base_url.clone()
        };
        let request = self
            .http
            .post(format!("{base}/v2/Indicators/Typing.json"))
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&[("channel", "whatsapp"), ("messageId", sid.as_str())]);
        self.execute::<serde_json::Value>(request).await.map(drop)
    }

    async fn execute<T: for<'de> Deserialize<'de>>(&self, request: reqwest::RequestBuilder) -> Result<T, SendError> {
        let response = request
            .send()
            .await
            .map_err(|e| if e.is_connect() { SendError::Unreachable(e.to_string()) } else { SendError::NoAnswer(e.to_string()) })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| SendError::NoAnswer(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| SendError::NoAnswer(format!("unreadable answer: {e}")));
        }
        let parsed: Option<ApiErrorBody> = serde_json::from_slice(&bytes).ok();
        Err(SendError::Api {
            status: status.as_u16(),
            code: parsed.as_ref().and_then(|p| p.code),
            message: parsed.and_then(|p| p.message).unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        })
    }
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
