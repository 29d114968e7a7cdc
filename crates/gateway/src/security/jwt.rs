//! Bearer tokens: HS256 with `JWT_SECRET`, or RS256 / ES256 with `JWT_PUBLIC_KEY_FILE`; `sub` and
//! `exp` required, `exp`/`nbf` checked with 30 s leeway, `aud`/`iss` when configured.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::scope::Scope;

/// The claims the API reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Who the caller is (an application or service name).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not valid before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// What the token may do: space-separated [`Scope`] names; absent, everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Claims {
    /// Whether this token may act with `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        super::scope::grants(self.scope.as_deref(), scope)
    }
}

/// A token that cannot be accepted, and why (safe to show the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Keys and rules for verifying tokens.
pub struct JwtKeys {
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// HS256 keys from a shared secret.
    pub fn hs256(secret: &SecretString) -> Self {
        Self::with(DecodingKey::from_secret(secret.expose_secret().as_bytes()), Algorithm::HS256)
    }

    /// Keys from a PEM public key: RSA → RS256, EC P-256 → ES256. Only that algorithm is accepted,
    /// so a token "signed" with the public key as an HMAC secret is refused.
    pub fn public_key(pem: &str) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
            return Ok(Self::with(key, Algorithm::RS256));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
            return Ok(Self::with(key, Algorithm::ES256));
        }
        Err("not an RSA or EC (P-256) public key in PEM form".into())
    }

    /// The keys the configuration asks for, with `aud` / `iss` checks when configured.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, crate::config::ConfigError> {
        let mut keys = match &config.jwt_public_key_pem {
            Some(pem) => Self::public_key(pem).map_err(|reason| crate::config::ConfigError { variable: "JWT_PUBLIC_KEY_FILE", reason })?,
            None => Self::hs256(&config.jwt_secret),
        };
        if let Some(aud) = &config.jwt_audience {
            keys.validation.set_audience(&[aud]);
            keys.validation.validate_aud = true;
            keys.validation.required_spec_claims.insert("aud".into());
        }
        if let Some(iss) = &config.jwt_issuer {
            keys.validation.set_issuer(&[iss]);
            keys.validation.required_spec_claims.insert("iss".into());
        }
        Ok(keys)
    }

    fn with(decoding: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { decoding, validation }
    }

    /// Verifies a token and returns its claims, or what is wrong with it (for the client).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError(describe(&e)))
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the bearer token has expired".into(),
        ErrorKind::ImmatureSignature => "the bearer token is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "the bearer token's signature is invalid".into(),
        ErrorKind::InvalidAlgorithm => "the bearer token uses an algorithm this server does not accept".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the bearer token lacks the required claim `{claim}`"),
        ErrorKind::InvalidAudience => "the bearer token's audience (aud) is not this API".into(),
        ErrorKind::InvalidIssuer => "the bearer token's issuer (iss) is not trusted".into(),
        ErrorKind::InvalidKeyFormat | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey => {
            "the bearer token cannot be checked with the configured key".into()
        }
        ErrorKind::Json(err) if err.to_string().contains("unknown variant") => {
            "the bearer token uses an algorithm this server does not accept (`alg: none` is never accepted)".into()
        }
        ErrorKind::Json(err) => {
            format!("the bearer token's claims are invalid: {}", err.to_string().split(" at line ").next().unwrap_or_default())
        }
        _ => "the bearer token is malformed".into(),
    }
}

/// Mints an HS256 token for `sub`, valid for `ttl_secs`, with full access.
pub fn mint_token(secret: &SecretString, sub: &str, ttl_secs: u64) -> anyhow::Result<String> {
    mint_scoped_token(secret, sub, ttl_secs, None)
}

/// Mints an HS256 token for `sub`, valid for `ttl_secs`, limited to `scopes` (`None`: full access).
pub fn mint_scoped_token(secret: &SecretString, sub: &str, ttl_secs: u64, scopes: Option<&[Scope]>) -> anyhow::Result<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let scope = scopes.map(|scopes| scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
    let claims = Claims { sub: sub.to_owned(), exp: now + ttl_secs, iat: Some(now), nbf: None, scope };
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.expose_secret().as_bytes()))?)
}
