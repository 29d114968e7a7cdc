//! Injected inbound WhatsApp messages: stored like Twilio stores them, open the sender's 24-hour
//! window, and are POSTed (signed) to the inbound webhook with the params of a real WhatsApp
//! inbound request.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::behaviour::lock;
use crate::model::{API_VERSION, Direction, Message, Status, new_sid, now, parse_e164};
use crate::webhook::Webhook;

/// An inbound message to inject. JSON field names follow Twilio's params (`From`, `To`, `Body`,
/// `ProfileName`, `WaId`, `MediaUrl`); snake_case names are accepted too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The customer's number, `+E164` or `whatsapp:+E164`.
    #[serde(rename = "From", alias = "from")]
    pub from: String,
    /// The business number; the config's `business_number` when absent.
    #[serde(rename = "To", alias = "to", default)]
    pub to: Option<String>,
    /// Message text.
    #[serde(rename = "Body", alias = "body", default)]
    pub body: String,
    /// The customer's WhatsApp profile name.
    #[serde(rename = "ProfileName", alias = "profile_name", default)]
    pub profile_name: Option<String>,
    /// The customer's WhatsApp ID; the digits of `from` when absent.
    #[serde(rename = "WaId", alias = "wa_id", default)]
    pub wa_id: Option<String>,
    /// Media URLs, sent as `MediaUrl0…` with a content type guessed from the extension.
    #[serde(rename = "MediaUrl", alias = "media_urls", default)]
    pub media_urls: Vec<String>,
    /// Where to POST, instead of the config's `inbound_webhook_url`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Further Twilio parameters of a rich message, sent as given: a button reply
    /// (`ButtonText`, `ButtonPayload`, `ButtonType`), a location (`Latitude`, `Longitude`,
    /// `Address`, `Label`), a referral (`ReferralCtwaClid`, …), `MessageType` (replacing the one
    /// guessed from the media).
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// What the inbound webhook answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundDelivery {
    /// HTTP status of the webhook's answer.
    pub status: u16,
    /// The webhook's response body (TwiML, usually).
    pub body: String,
    /// The SID given to the inbound message (`SM…`, or `MM…` with media).
    pub message_sid: String,
}

impl InboundMessage {
    /// Builds one from form params (`MediaUrl` may repeat; `webhook_url` is also read).
    pub fn from_form(params: &[(String, String)]) -> Self {
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
        Self {
            from: get("From").unwrap_or_default(),
            to: get("To"),
            body: get("Body").unwrap_or_default(),
            profile_name: get("ProfileName"),
            wa_id: get("WaId"),
            media_urls: params.iter().filter(|(k, v)| k == "MediaUrl" && !v.is_empty()).map(|(_, v)| v.clone()).collect(),
            webhook_url: get("webhook_url"),
            extra: params
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "From" | "To" | "Body" | "ProfileName" | "WaId" | "MediaUrl" | "webhook_url"))
                .cloned()
                .collect(),
        }
    }
}

/// An injection the caller got wrong (as opposed to a webhook that could not be reached).
#[derive(Debug)]
pub(crate) struct BadInbound(String);

impl std::fmt::Display for BadInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInbound {}

pub(crate) async fn inject(shared: &Shared, m: InboundMessage) -> anyhow::Result<InboundDelivery> {
    let bad = |message: String| anyhow::Error::new(BadInbound(message));
    let url = m
        .webhook_url
        .clone()
        .or_else(|| shared.config.inbound_webhook_url.clone())
        .ok_or_else(|| bad("no webhook URL: set inbound_webhook_url (EMULATOR_INBOUND_WEBHOOK_URL) or webhook_url".to_owned()))?;
    let from = parse_e164(&m.from).ok_or_else(|| bad(format!("From must be an E.164 number, got {:?}", m.from)))?.to_owned();
    let to_given = m.to.clone().unwrap_or_else(|| shared.config.business_number.clone());
    let to = parse_e164(&to_given).ok_or_else(|| bad(format!("To must be an E.164 number, got {to_given:?}")))?.to_owned();
    let sid = new_sid(if m.media_urls.is_empty() { "SM" } else { "MM" });
    let params = params(shared, &m, &sid, &from, &to);

    store(shared, &m, &sid, &from, &to);
    // Open the window before the webhook runs: its handler may reply at once.
    shared.windows.open(&from);
    shared.counters.inbound_injected();
    tracing::debug!(sid = %sid, from = %from, "inbound message injected");

    let answer = Webhook::new(url.clone(), params).post(shared).await.with_context(|| format!("inbound webhook {url} unreachable"))?;
    Ok(InboundDelivery { status: answer.status, body: answer.body, message_sid: sid })
}

fn params(shared: &Shared, m: &InboundMessage, sid: &str, from: &str, to: &str) -> Vec<(String, String)> {
    let mut params = vec![
        ("MessageSid".to_owned(), sid.to_owned()),
        ("SmsSid".to_owned(), sid.to_owned()),
        ("SmsMessageSid".to_owned(), sid.to_owned()),
        ("AccountSid".to_owned(), shared.config.account_sid.clone()),
        ("From".to_owned(), format!("whatsapp:{from}")),
        ("To".to_owned(), format!("whatsapp:{to}")),
        ("Body".to_owned(), m.body.clone()),
        ("NumMedia".to_owned(), m.media_urls.len().to_string()),
        ("NumSegments".to_owned(), "1".to_owned()),
        ("SmsStatus".to_owned(), "received".to_owned()),
        ("ApiVersion".to_owned(), API_VERSION.to_owned()),
        ("WaId".to_owned(), m.wa_id.clone().unwrap_or_else(|| from.trim_start_matches('+').to_owned())),
    ];
    if let Some(name) = &m.profile_name {
        params.push(("ProfileName".to_owned(), name.clone()));
    }
    for (i, url) in m.media_urls.iter().enumerate() {
        params.push((format!("MediaUrl{i}"), url.clone()));
        params.push((format!("MediaContentType{i}"), content_type(url).to_owned()));
    }
    let message_type = m.media_urls.first().map_or("text", |url| message_type(content_type(url)));
    if !m.extra.contains_key("MessageType") {
        params.push(("MessageType".to_owned(), message_type.to_owned()));
    }
    params.extend(m.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    params
}

fn store(shared: &Shared, m: &InboundMessage, sid: &str, from: &str, to: &str) {
    let at = now();
    lock(&shared.store).insert(Message {
        sid: sid.to_owned(),
        account_sid: shared.config.account_sid.clone(),
        from: Some(format!("whatsapp:{from}")),
        to: format!("whatsapp:{to}"),
        body: m.body.clone(),
        num_media: m.media_urls.len(),
        messaging_service_sid: shared.default_service_sid.clone(),
        status: Status::Received,
        direction: Direction::Inbound,
        error_code: None,
        error_message: None,
        date_created: at,
        date_updated: at,
        date_sent: Some(at),
        status_callback: None,
        validity_period: None,
        pending_from: None,
    });
}

/// A content type from the URL's extension.
fn content_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "ogg" | "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn message_type(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("video") => "video",
        Some("audio") => "audio",
        _ => "document",
    }
}
