//! The Standard Webhooks signature (<https://www.standardwebhooks.com>) on the events the gateway
//! posts: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with
//! the base64 part of a `whsec_…` secret. During a rotation the header carries one signature per
//! valid secret, separated by spaces; a receiver accepts the request if any one matches.
//!
//! Hand-written because it is a dozen lines over `aws-lc-rs` (already here for TLS and JWT):
//! the Rust `standardwebhooks` crate verifies but its signing pulls in a second HMAC stack.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The prefix of a secret's text.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret: the key bytes of a `whsec_…` text.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// The text is not a usable secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSecret {
    /// No `whsec_` prefix.
    #[error("must start with `whsec_` (a Standard Webhooks secret: whsec_ and base64 of 24 to 64 random bytes)")]
    Prefix,
    /// Not base64 after the prefix.
    #[error("is not base64 after `whsec_`")]
    Base64,
    /// Too short or too long a key.
    #[error("must hold 24 to 64 bytes of key after `whsec_` (it holds {0})")]
    Length(usize),
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, InvalidSecret> {
        let key = text.strip_prefix(SECRET_PREFIX).ok_or(InvalidSecret::Prefix)?;
        let bytes = STANDARD.decode(key).map_err(|_| InvalidSecret::Base64)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(InvalidSecret::Length(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// A new random secret (32 bytes from the system's CSPRNG).
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
        Self(bytes)
    }

    /// The secret as text: `whsec_` and base64.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The `v1` signature of one delivery: base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0);
        let mut context = aws_lc_rs::hmac::Context::with_key(&key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        STANDARD.encode(context.sign().as_ref())
    }
}

/// The `webhook-signature` header value: `v1,<sig>` for each secret, separated by spaces.
pub fn signature_header<'a>(secrets: impl IntoIterator<Item = &'a WebhookSecret>, id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.into_iter().map(|s| format!("v1,{}", s.sign(id, timestamp, body))).collect::<Vec<_>>().join(" ")
}

/// Whether `header` carries a valid `v1` signature of this delivery by `secret` (constant-time
/// comparison). What an application does on receipt; the tests use it too.
pub fn verify(secret: &WebhookSecret, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    let expected = secret.sign(id, timestamp, body);
    header
        .split_whitespace()
        .filter_map(|part| part.strip_prefix("v1,"))
        .any(|given| aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        // The specification's example (also in the reference libraries' tests).
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let header = signature_header([&WebhookSecret::generate(), &secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert!(verify(&secret, &header, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body));
        assert!(!verify(&secret, &header, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body));
        assert!(!verify(&secret, &header, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232315}"#));
    }

    #[test]
    fn secrets_are_whsec_base64_of_enough_bytes_and_never_printed() {
        let generated = WebhookSecret::generate();
        assert_eq!(WebhookSecret::parse(&generated.to_text()), Ok(generated.clone()));
        assert_eq!(format!("{generated:?}"), "WebhookSecret(…)");
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(InvalidSecret::Prefix));
        assert_eq!(WebhookSecret::parse("whsec_!!!"), Err(InvalidSecret::Base64));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(InvalidSecret::Length(5)));
    }
}
