//! SendGrid's signed Event Webhook: `X-Twilio-Email-Event-Webhook-Signature` is base64 of an
//! ECDSA P-256 / SHA-256 signature (ASN.1 DER) over the `X-Twilio-Email-Event-Webhook-Timestamp`
//! value followed by the raw body, by the key whose public half the account shows as base64 of
//! its SubjectPublicKeyInfo (`SENDGRID_WEBHOOK_PUBLIC_KEY`).
//!
//! A few lines over `aws-lc-rs` (already here for TLS, JWT and HMAC), which reads the SPKI form.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The DER prefix of a P-256 SubjectPublicKeyInfo (`id-ecPublicKey`, `prime256v1`, a 65-byte
/// uncompressed point follows).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
    0x07, 0x03, 0x42, 0x00,
];

/// The key that signs an account's event batches.
#[derive(Clone, PartialEq, Eq)]
pub struct EventWebhookKey(Vec<u8>);

impl std::fmt::Debug for EventWebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventWebhookKey(P-256)")
    }
}

/// The text is not a P-256 public key as SendGrid shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "is not a P-256 public key: base64 of a SubjectPublicKeyInfo (MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…), as SendGrid's Event Webhook settings show it"
)]
pub struct InvalidKey;

impl EventWebhookKey {
    /// Parses base64 of the key's SubjectPublicKeyInfo.
    pub fn parse(text: &str) -> Result<Self, InvalidKey> {
        let der = STANDARD.decode(text.trim()).map_err(|_| InvalidKey)?;
        if der.len() != P256_SPKI_PREFIX.len() + 65 || der[..P256_SPKI_PREFIX.len()] != P256_SPKI_PREFIX || der[26] != 0x04 {
            return Err(InvalidKey);
        }
        Ok(Self(der))
    }

    /// Whether `signature` (base64 DER) signs `timestamp` followed by `body`.
    pub fn verify(&self, timestamp: &str, body: &[u8], signature: &str) -> bool {
        let Ok(signature) = STANDARD.decode(signature.trim()) else { return false };
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, &self.0)
            .verify(&signed, &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const TIMESTAMP: &str = "1588788367";
    const PAYLOAD: &str = r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    const SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";

    #[test]
    fn sendgrids_published_test_vector_verifies_and_nothing_else_does() {
        let key = EventWebhookKey::parse(KEY).unwrap();
        assert!(key.verify(TIMESTAMP, PAYLOAD.as_bytes(), SIGNATURE));
        // The raw body exactly: a line ending more is another payload.
        assert!(!key.verify(TIMESTAMP, format!("{PAYLOAD}\r\n").as_bytes(), SIGNATURE));
        assert!(!key.verify("1588788368", PAYLOAD.as_bytes(), SIGNATURE));
        assert!(!key.verify(TIMESTAMP, PAYLOAD.replace("test_event", "delivered").as_bytes(), SIGNATURE));
        assert!(!key.verify(TIMESTAMP, PAYLOAD.as_bytes(), "not base64!"));
        assert!(!key.verify(TIMESTAMP, PAYLOAD.as_bytes(), &SIGNATURE.replace("MEUCIQ", "MEUCIR")));
        assert_eq!(format!("{key:?}"), "EventWebhookKey(P-256)");
    }

    #[test]
    fn only_a_p256_subject_public_key_info_is_a_key() {
        assert_eq!(EventWebhookKey::parse("not base64"), Err(InvalidKey));
        assert_eq!(EventWebhookKey::parse(&STANDARD.encode([0u8; 91])), Err(InvalidKey));
        assert_eq!(EventWebhookKey::parse(&KEY[..40]), Err(InvalidKey));
    }
}
