//! The create request (`CreateMessageRequest`): form parameters parsed into a checked value,
//! with Twilio's error codes for each rule it breaks.

use crate::config::is_sid;
use crate::error::TwilioError;
use crate::model::{is_whatsapp, parse_e164};

/// The most characters `Body` may have.
pub const MAX_BODY_CHARS: usize = 1600;
/// The most `MediaUrl` values one message may carry.
pub const MAX_MEDIA: usize = 10;

/// A create request that passed every rule.
#[derive(Debug, Clone)]
pub(crate) struct CreateRequest {
    /// `To` as given (trimmed), e.g. `whatsapp:+14155550100`.
    pub to: String,
    /// The recipient's E.164 number.
    pub to_e164: String,
    /// `From` as given, if any.
    pub from: Option<String>,
    /// `MessagingServiceSid`, if any.
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub media_urls: Vec<String>,
    pub content_sid: Option<String>,
    pub status_callback: Option<String>,
    /// `ValidityPeriod`: seconds it may wait in the queue (1 … 36000).
    pub validity_period: Option<u32>,
}

impl CreateRequest {
    /// Applies Twilio's create rules in the order Twilio reports them.
    pub fn parse(params: &[(String, String)]) -> Result<Self, TwilioError> {
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty());
        let body = params.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()).unwrap_or_default();
        let media_urls: Vec<String> =
            params.iter().filter(|(k, v)| k == "MediaUrl" && !v.trim().is_empty()).map(|(_, v)| v.trim().to_owned()).collect();
        let to = get("To").ok_or_else(|| TwilioError::bad_request(21604, "A 'To' phone number is required."))?;
        let from = get("From");
        let messaging_service_sid = get("MessagingServiceSid");
        if from.is_none() && messaging_service_sid.is_none() {
            return Err(TwilioError::bad_request(21603, "A 'From' phone number is required."));
        }
        if let Some(sid) = &messaging_service_sid
            && !is_sid(sid, "MG")
        {
            return Err(TwilioError::bad_request(30127, "MessagingServiceSID is invalid."));
        }
        let content_sid = get("ContentSid");
        if let Some(sid) = &content_sid
            && !is_sid(sid, "HX")
        {
            return Err(TwilioError::bad_request(21655, "The ContentSid is Invalid"));
        }
        if body.is_empty() && media_urls.is_empty() && content_sid.is_none() {
            return Err(TwilioError::bad_request(21602, "Message body is required."));
        }
        check_content(&body, &media_urls)?;
        let to_e164 = check_addresses(&to, from.as_deref())?;
        let status_callback = get("StatusCallback");
        if let Some(url) = &status_callback
            && !is_http_url(url)
        {
            return Err(TwilioError::bad_request(21609, format!("Invalid StatusCallback url: {url}")));
        }
        let validity_period = match get("ValidityPeriod") {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(seconds) if (1..=36_000).contains(&seconds) => Some(seconds),
                _ => return Err(TwilioError::bad_request(21624, format!("Invalid validity period value: {v}"))),
            },
        };
        Ok(Self { to, to_e164, from, messaging_service_sid, body, media_urls, content_sid, status_callback, validity_period })
    }

    /// The sender's key: the E.164 `From`, else the Messaging Service SID.
    pub fn sender_key(&self) -> String {
        match &self.from {
            Some(from) => crate::model::recipient_key(from),
            None => self.messaging_service_sid.clone().unwrap_or_default(),
        }
    }

    /// The message is to a WhatsApp address.
    pub fn is_whatsapp(&self) -> bool {
        is_whatsapp(&self.to)
    }

    /// A free-form (session) message: anything that is not a `ContentSid` template.
    pub fn is_free_form(&self) -> bool {
        self.content_sid.is_none()
    }
}

fn check_content(body: &str, media_urls: &[String]) -> Result<(), TwilioError> {
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(TwilioError::bad_request(21617, "The concatenated message body exceeds the 1600 character limit."));
    }
    if media_urls.len() > MAX_MEDIA {
        return Err(TwilioError::bad_request(21623, "Number of media files exceeds allowed limit"));
    }
    if let Some(bad) = media_urls.iter().find(|url| !is_http_url(url)) {
        return Err(TwilioError::bad_request(21620, format!("Invalid media URL(s): {bad}")));
    }
    Ok(())
}

/// Checks `To` and `From`; returns the recipient's E.164 number.
fn check_addresses(to: &str, from: Option<&str>) -> Result<String, TwilioError> {
    let to_e164 = parse_e164(to).ok_or_else(|| TwilioError::bad_request(21211, format!("Invalid 'To' Phone Number: {to}")))?;
    let Some(from) = from else {
        return Ok(to_e164.to_owned());
    };
    let from_e164 = parse_e164(from).ok_or_else(|| TwilioError::bad_request(21212, format!("Invalid From Number (caller ID): {from}")))?;
    if is_whatsapp(to) != is_whatsapp(from) {
        return Err(TwilioError::bad_request(21910, "Invalid From and To pair. From and To should be of the same channel."));
    }
    if to_e164 == from_e164 {
        return Err(TwilioError::bad_request(21266, format!("'To' and 'From' number cannot be the same: {to}")));
    }
    Ok(to_e164.to_owned())
}

fn is_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn code(pairs: &[(&str, &str)]) -> u32 {
        CreateRequest::parse(&params(pairs)).unwrap_err().code
    }

    const TO: (&str, &str) = ("To", "whatsapp:+14155550100");
    const FROM: (&str, &str) = ("From", "whatsapp:+14155238886");

    #[test]
    fn each_rule_has_its_twilio_code() {
        assert_eq!(code(&[FROM, ("Body", "x")]), 21604);
        assert_eq!(code(&[TO, ("Body", "x")]), 21603);
        assert_eq!(code(&[TO, FROM]), 21602);
        assert_eq!(code(&[TO, FROM, ("Body", &"a".repeat(1601))]), 21617);
        assert_eq!(code(&[TO, FROM, ("ContentSid", "HXnothex")]), 21655);
        assert_eq!(code(&[TO, ("MessagingServiceSid", "MG1"), ("Body", "x")]), 30127);
        assert_eq!(code(&[("To", "whatsapp:+1"), FROM, ("Body", "x")]), 21211);
        assert_eq!(code(&[("To", "whatsapp:+14155238886"), FROM, ("Body", "x")]), 21266);
        assert_eq!(code(&[("To", "+14155550100"), FROM, ("Body", "x")]), 21910);
        let eleven: Vec<(&str, &str)> = std::iter::repeat_n(("MediaUrl", "https://x.test/a.png"), 11).collect();
        assert_eq!(code(&[&[TO, FROM][..], &eleven[..]].concat()), 21623);
    }

    #[test]
    fn a_valid_request_keeps_every_field() {
        let req = CreateRequest::parse(&params(&[
            TO,
            FROM,
            ("Body", "hi"),
            ("MediaUrl", "https://x.test/1.png"),
            ("MediaUrl", "https://x.test/2.png"),
            ("StatusCallback", "http://127.0.0.1:9/cb"),
        ]))
        .unwrap();
        assert_eq!(req.to_e164, "+14155550100");
        assert_eq!(req.media_urls.len(), 2);
        assert_eq!(req.sender_key(), "+14155238886");
        assert!(req.is_whatsapp() && req.is_free_form());
        assert_eq!(req.validity_period, None);
    }

    #[test]
    fn validity_period_is_an_integer_from_1_to_36000() {
        let with = |v: &str| CreateRequest::parse(&params(&[TO, FROM, ("Body", "hi"), ("ValidityPeriod", v)]));
        assert_eq!(with("600").unwrap().validity_period, Some(600));
        assert_eq!(with("36000").unwrap().validity_period, Some(36_000));
        for bad in ["0", "36001", "-5", "1.5", "soon"] {
            assert_eq!(with(bad).unwrap_err().code, 21624, "{bad}");
        }
    }
}
