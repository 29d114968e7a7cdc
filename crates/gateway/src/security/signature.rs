//! What checking Twilio's signatures needs: the URL Twilio calls and the accepted auth tokens.

use secrecy::SecretString;

/// What signature checking needs.
pub struct SignatureConfig {
    /// The public base URL Twilio calls (scheme, host, port; no trailing slash).
    pub public_base_url: String,
    /// Accepted auth tokens: the primary, then a secondary during rotation.
    pub tokens: Vec<SecretString>,
}

impl std::fmt::Debug for SignatureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureConfig").field("public_base_url", &self.public_base_url).field("tokens", &self.tokens.len()).finish()
    }
}
