//! `POST /api/v1/whatsapp/webhook`: incoming WhatsApp messages, answered with TwiML.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::TwilioSigned;
use crate::domain::PhoneNumber;
use crate::domain::phone::WHATSAPP_PREFIX;
use crate::error::ApiError;
use crate::http::AppState;
use crate::store::{InboundMessage, now_ms};

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The TwiML answer: one `<Message>` or an empty `<Response/>`.
pub fn twiml(reply: Option<&str>) -> String {
    match reply {
        Some(text) => format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>", xml_escape(text)),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />".to_owned(),
    }
}

fn parse(signed: &TwilioSigned) -> Result<InboundMessage, ApiError> {
    let sid =
        signed.get("MessageSid").or_else(|| signed.get("SmsMessageSid")).ok_or_else(|| ApiError::field("MessageSid", "is required"))?;
    let from = signed.get("From").ok_or_else(|| ApiError::field("From", "is required"))?;
    let from = PhoneNumber::parse_received(from).map_err(|e| ApiError::field("From", e.to_string()))?;
    let to = signed.get("To").unwrap_or_default();
    let to = PhoneNumber::parse(to).map(|p| p.as_e164().to_owned()).unwrap_or_else(|_| to.trim_start_matches(WHATSAPP_PREFIX).to_owned());
    let num_media: usize = signed.get("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0).min(10);
    let media_urls = (0..num_media).filter_map(|i| signed.get(&format!("MediaUrl{i}")).map(str::to_owned)).collect();
    Ok(InboundMessage {
        sid: sid.chars().take(64).collect(),
        from,
        to,
        body: signed.get("Body").map(str::to_owned),
        media_urls,
        profile_name: signed.get("ProfileName").map(str::to_owned),
        wa_id: signed.get("WaId").map(str::to_owned),
        received_at: now_ms(),
    })
}

/// Stores the message, updates the contact, runs the handlers, and answers TwiML.
#[tracing::instrument(skip_all)]
pub(super) async fn incoming_message(State(state): State<AppState>, signed: TwilioSigned) -> Result<Response, ApiError> {
    let message = parse(&signed)?;
    // Storing, handlers and forwarding run to the end even if Twilio hangs up.
    let gateway = state.gateway.clone();
    let reply = tokio::spawn(async move { gateway.receive(message).await }.instrument(tracing::Span::current()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    tracing::info!(message_id = %reply.message_id, duplicate = reply.duplicate, "incoming message");
    Ok(([(CONTENT_TYPE, "text/xml; charset=utf-8")], twiml(reply.reply.as_deref())).into_response())
}

#[cfg(test)]
mod tests {
    use super::twiml;

    #[test]
    fn twiml_is_escaped() {
        assert_eq!(twiml(None), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />");
        assert_eq!(
            twiml(Some("a<b & \"c\"")),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>a&lt;b &amp; &quot;c&quot;</Message></Response>"
        );
    }
}
