//! E.164 phone numbers, as WhatsApp addresses them.

use std::fmt;

/// Prefix Twilio uses for WhatsApp channel addresses.
pub const WHATSAPP_PREFIX: &str = "whatsapp:";

/// What [`PhoneNumber::parse_exact`] takes, as a regular expression (for the OpenAPI document).
pub const E164_PATTERN: &str = "^(whatsapp:)?\\+[1-9][0-9]{6,14}$";

/// What [`PhoneNumber::parse_received`] takes, as a regular expression (for the OpenAPI document).
pub const RECEIVED_PATTERN: &str = "^(whatsapp:)?\\+[0-9]{7,15}$";

/// A valid phone number in E.164 form (`+14155550100`).
///
/// Parsed with the `phonenumber` crate (Google's libphonenumber metadata), so a number must not
/// only look like E.164 but be a possible, valid number for its country.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a phone number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    /// Nothing was given.
    #[error("is empty")]
    Empty,
    /// E.164 numbers start with `+` and the country code.
    #[error("must be in E.164 form, starting with + and the country code (e.g. +14155550100): {0:?}")]
    MissingPlus(String),
    /// Longer than any E.164 number can be.
    #[error("is too long to be an E.164 number ({0} characters)")]
    TooLong(usize),
    /// Not `+` followed by the digits of an E.164 number and nothing else.
    #[error("must be exactly + and 7 to 15 digits, the first not 0, without spaces or separators (e.g. +14155550100): {0:?}")]
    NotE164(String),
    /// Could not be parsed as a phone number.
    #[error("is not a phone number: {input:?} ({reason})")]
    Unparseable {
        /// What was given.
        input: String,
        /// The parser's reason.
        reason: String,
    },
    /// Parsed, but not a valid number for its country.
    #[error("is not a valid phone number: {0:?}")]
    Invalid(String),
}

impl PhoneNumber {
    /// Parses `+E164` or `whatsapp:+E164` (spaces, dashes and brackets are tolerated).
    pub fn parse(input: &str) -> Result<Self, PhoneNumberError> {
        let trimmed = input.trim();
        let raw = trimmed.strip_prefix(WHATSAPP_PREFIX).unwrap_or(trimmed).trim();
        if raw.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        // E.164 is at most 15 digits; leave room for separators but refuse absurd input early.
        if raw.chars().count() > 32 {
            return Err(PhoneNumberError::TooLong(raw.chars().count()));
        }
        if !raw.starts_with('+') {
            return Err(PhoneNumberError::MissingPlus(raw.to_owned()));
        }
        let parsed =
            phonenumber::parse(None, raw).map_err(|e| PhoneNumberError::Unparseable { input: raw.to_owned(), reason: e.to_string() })?;
        if !parsed.is_valid() {
            return Err(PhoneNumberError::Invalid(raw.to_owned()));
        }
        Ok(Self(parsed.format().mode(phonenumber::Mode::E164).to_string()))
    }

    /// Parses exactly `+E164` or `whatsapp:+E164` — `+`, a non-zero digit, 6 to 14 more digits,
    /// nothing else ([`E164_PATTERN`]) — of a number valid for its country. What the API takes:
    /// the OpenAPI document states the same pattern, so a client knows the syntax beforehand.
    pub fn parse_exact(input: &str) -> Result<Self, PhoneNumberError> {
        let raw = input.strip_prefix(WHATSAPP_PREFIX).unwrap_or(input);
        if raw.chars().count() > 32 {
            return Err(PhoneNumberError::TooLong(raw.chars().count()));
        }
        if e164_digits(raw)?.starts_with('0') {
            return Err(PhoneNumberError::NotE164(raw.to_owned()));
        }
        Self::parse(raw)
    }

    /// A number Twilio hands us (`From`, `To` of a webhook), which must never be dropped: `+` and
    /// 7 to 15 digits ([`RECEIVED_PATTERN`]), kept even when it fails the metadata's validity
    /// check (a range newer than the metadata).
    pub fn parse_received(input: &str) -> Result<Self, PhoneNumberError> {
        let raw = input.strip_prefix(WHATSAPP_PREFIX).unwrap_or(input);
        e164_digits(raw)?;
        Ok(Self::parse(raw).unwrap_or_else(|_| Self(raw.to_owned())))
    }

    /// The number in E.164 form: `+14155550100`.
    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// Whether the number is in the United States (by its numbering plan, not only `+1`).
    pub fn is_us(&self) -> bool {
        phonenumber::parse(None, &self.0).is_ok_and(|p| p.country().id() == Some(phonenumber::country::Id::US))
    }

    /// The WhatsApp channel address Twilio expects: `whatsapp:+14155550100`.
    pub fn whatsapp_address(&self) -> String {
        format!("{WHATSAPP_PREFIX}{}", self.0)
    }
}

/// The digits of `raw` if it is `+` and 7 to 15 ASCII digits, nothing else.
fn e164_digits(raw: &str) -> Result<&str, PhoneNumberError> {
    let Some(digits) = raw.strip_prefix('+') else {
        return Err(if raw.is_empty() { PhoneNumberError::Empty } else { PhoneNumberError::MissingPlus(raw.to_owned()) });
    };
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(PhoneNumberError::NotE164(raw.to_owned()))
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_whatsapp_addresses() {
        let a = PhoneNumber::parse("+14155550100").unwrap();
        let b = PhoneNumber::parse("whatsapp:+1 415-555-0100").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_e164(), "+14155550100");
        assert_eq!(a.whatsapp_address(), "whatsapp:+14155550100");
        assert_eq!(PhoneNumber::parse("+447911123456").unwrap().as_e164(), "+447911123456");
        assert!(a.is_us());
        // Canada shares +1; the plan tells them apart.
        assert!(!PhoneNumber::parse("+16135550123").unwrap().is_us());
        assert!(!PhoneNumber::parse("+447911123456").unwrap().is_us());
    }

    #[test]
    fn numbers_twilio_sends_are_kept_even_if_the_metadata_does_not_know_them() {
        assert!(PhoneNumber::parse("+99912345678").is_err());
        assert_eq!(PhoneNumber::parse_received("+99912345678").unwrap().as_e164(), "+99912345678");
        assert_eq!(PhoneNumber::parse_received("whatsapp:+14155550100").unwrap().as_e164(), "+14155550100");
        assert!(PhoneNumber::parse_received("+1-not").is_err());
    }

    #[test]
    fn the_api_takes_exactly_the_documented_syntax() {
        assert_eq!(PhoneNumber::parse_exact("whatsapp:+14155550100").unwrap().as_e164(), "+14155550100");
        for spaced in ["+1 415-555-0100", " +14155550100", "+14155550100 ", "whatsapp: +14155550100", "+(1)4155550100"] {
            assert!(
                matches!(PhoneNumber::parse_exact(spaced), Err(PhoneNumberError::NotE164(_) | PhoneNumberError::MissingPlus(_))),
                "{spaced:?}"
            );
        }
        assert!(matches!(PhoneNumber::parse_exact("+04155550100"), Err(PhoneNumberError::NotE164(_))));
        assert!(matches!(
            PhoneNumber::parse_exact("+10000000000"),
            Err(PhoneNumberError::Invalid(_) | PhoneNumberError::Unparseable { .. })
        ));
        assert!(PhoneNumber::parse_received("+1 415 555 0100").is_err());
        assert_eq!(PhoneNumber::parse_received("+0123456").unwrap().as_e164(), "+0123456");
    }

    #[test]
    fn rejects_what_is_not_e164() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneNumberError::Empty));
        assert_eq!(PhoneNumber::parse("whatsapp:"), Err(PhoneNumberError::Empty));
        assert!(matches!(PhoneNumber::parse("4155550100"), Err(PhoneNumberError::MissingPlus(_))));
        assert!(matches!(PhoneNumber::parse("+1415555"), Err(PhoneNumberError::Invalid(_) | PhoneNumberError::Unparseable { .. })));
        assert!(matches!(PhoneNumber::parse("+hello"), Err(PhoneNumberError::Unparseable { .. } | PhoneNumberError::Invalid(_))));
        assert!(matches!(PhoneNumber::parse(&format!("+{}", "9".repeat(200))), Err(PhoneNumberError::TooLong(_))));
    }
}
