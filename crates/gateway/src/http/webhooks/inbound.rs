//! `POST /api/v1/whatsapp/webhook`: incoming WhatsApp messages, answered with TwiML.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::forms::IncomingMessageForm;
use super::signed::TwilioSigned;
use crate::domain::{Button, InboundDetails, InboundMessage, ListReply, Location, Media, PhoneNumber, Referral, now_ms};
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
    let media: Vec<Media> = (0..num_media)
        .filter_map(|i| {
            let url = form.others.get(&format!("MediaUrl{i}"))?.clone();
            Some(Media { url, content_type: form.others.get(&format!("MediaContentType{i}")).cloned() })
        })
        .collect();
    let media_urls = media.iter().map(|m| m.url.clone()).collect();
    let details = details(&form.others, media);
    Ok(InboundMessage {
        sid,
        from,
        to,
        body: form.body,
        media_urls,
        profile_name: form.profile_name,
        wa_id: form.wa_id,
        received_at: now_ms(),
        details,
    })
}

/// The parameters of a rich message: a button, an interactive reply, a location, a referral.
fn details(others: &BTreeMap<String, String>, media: Vec<Media>) -> InboundDetails {
    let get = |name: &str| others.get(name).filter(|v| !v.is_empty()).cloned();
    let button = (get("ButtonText").is_some() || get("ButtonPayload").is_some()).then(|| Button {
        text: get("ButtonText"),
        payload: get("ButtonPayload"),
        kind: get("ButtonType"),
    });
    let interactive = get("InteractiveData")
        .or_else(|| get("FlowData"))
        .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
    let list_reply = (get("ListId").is_some() || get("ListTitle").is_some()).then(|| ListReply {
        id: get("ListId"),
        title: get("ListTitle"),
        description: get("ListDescription"),
    });
    // A location Twilio describes badly is left out (and logged), never the message with it:
    // Twilio does not retry a refused webhook.
    let coordinate = |name: &'static str, bound: f64| -> Option<f64> {
        let v = get(name)?;
        match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x.abs() <= bound => Some(x),
            _ => {
                tracing::warn!(parameter = name, value = %v.chars().take(40).collect::<String>(), "incoming location not understood; stored without it");
                None
            }
        }
    };
    let location = match (coordinate("Latitude", 90.0), coordinate("Longitude", 180.0)) {
        (Some(latitude), Some(longitude)) => Some(Location { latitude, longitude, address: get("Address"), label: get("Label") }),
        _ => None,
    };
    let referral = Referral {
        source_url: get("ReferralSourceUrl"),
        source_id: get("ReferralSourceId"),
        source_type: get("ReferralSourceType"),
        headline: get("ReferralHeadline"),
        body: get("ReferralBody"),
        media_url: get("ReferralMediaUrl"),
        media_content_type: get("ReferralMediaContentType"),
        ctwa_clid: get("ReferralCtwaClid"),
    };
    let flag = |name: &str| get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    InboundDetails {
        message_type: get("MessageType"),
        media,
        button,
        list_reply,
        interactive,
        location,
        referral: (referral != Referral::default()).then_some(referral),
        replied_to_sid: get("OriginalRepliedMessageSid"),
        forwarded: flag("Forwarded"),
        frequently_forwarded: flag("FrequentlyForwarded"),
    }
}

/// Incoming WhatsApp messages, answered with TwiML.
///
/// Stores the message (once per SID), updates the contact (opt-out on `STOP`, back in on `START`),
/// runs the handlers (auto-reply) and answers TwiML; its `message.received` event goes to the
/// event endpoints. What a rich message carries is kept in the message's `details`: media types
/// (`MediaContentType{N}`), a button (`ButtonText`, `ButtonPayload`, `ButtonType`), a list reply
/// (`ListId`, `ListTitle`, `ListDescription`), `InteractiveData` / `FlowData`, a location
/// (`Latitude`, `Longitude`, `Address`, `Label`), a click-to-WhatsApp referral (`Referral…`),
/// `OriginalRepliedMessageSid`, `Forwarded`, `FrequentlyForwarded`, `MessageType`.
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
