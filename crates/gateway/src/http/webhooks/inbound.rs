//! `POST /api/v1/whatsapp/webhook`: incoming WhatsApp messages, answered with TwiML.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::forms::IncomingMessageForm;
use super::signed::TwilioSigned;
use crate::domain::{InboundMessage, PhoneNumber, now_ms};
use crate::http::problem::{ApiError, ProblemDetails};
use crate::state::AppState;

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

fn parse(form: IncomingMessageForm) -> Result<InboundMessage, ApiError> {
    let sid = form.message_sid.ok_or_else(|| ApiError::field("MessageSid", "is required"))?;
    let from = form.from.ok_or_else(|| ApiError::field("From", "is required"))?;
    let from = PhoneNumber::parse_received(&from).map_err(|e| ApiError::field("From", e.to_string()))?;
    let to = form.to.ok_or_else(|| ApiError::field("To", "is required"))?;
    let to = PhoneNumber::parse_received(&to).map_err(|e| ApiError::field("To", e.to_string()))?;
    let num_media = form.num_media.unwrap_or(0).min(10);
    let media_urls = (0..num_media).filter_map(|i| form.others.get(&format!("MediaUrl{i}")).cloned()).collect();
    Ok(InboundMessage {
        sid,
        from,
        to,
        body: form.body,
        media_urls,
        profile_name: form.profile_name,
        wa_id: form.wa_id,
        received_at: now_ms(),
    })
}

/// Incoming WhatsApp messages, answered with TwiML.
///
/// Stores the message (once per SID), updates the contact (opt-out on `STOP`, back in on `START`),
/// runs the handlers (auto-reply, forwarding) and answers TwiML.
#[utoipa::path(
    post,
    path = "/api/v1/whatsapp/webhook",
    tag = "webhooks",
    operation_id = "incoming_message",
    security(("twilio_signature" = [])),
    request_body(
        content = IncomingMessageForm,
        content_type = "application/x-www-form-urlencoded",
        description = "Twilio's incoming message form (a JSON object of the same parameters is also accepted when the URL carries `bodySHA256`)."
    ),
    responses(
        (status = 200, description = "Stored; TwiML with the reply, if there is one, or an empty `<Response />`.",
            body = String, content_type = "text/xml",
            example = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Thanks!</Message></Response>"),
        (status = 403, description = "Missing or invalid `X-Twilio-Signature`.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`MessageSid`, `From` or `To` missing or malformed.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (per client IP).", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Not stored: the database is unavailable; Twilio retries.", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn incoming_message(
    State(state): State<AppState>,
    signed: TwilioSigned<IncomingMessageForm>,
) -> Result<Response, ApiError> {
    let message = parse(signed.form)?;
    // Storing, handlers and forwarding run to the end even if Twilio hangs up.
    let gateway = state.gateway.clone();
    let reply = tokio::spawn(async move { gateway.receive(message).await }.instrument(tracing::Span::current()))
        .await
        .map_err(ApiError::internal)??;
    tracing::debug!(message_id = %reply.message_id, duplicate = reply.duplicate, "incoming message");
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
