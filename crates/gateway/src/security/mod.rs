//! Security primitives the HTTP layer applies: bearer tokens ([`jwt`]), Twilio signature settings
//! ([`signature`]; the HMAC itself is the `twilio-signature` crate) and the transport policy
//! ([`transport`]). No HTTP framework here, so the CLI mints tokens with the same code.

pub mod jwt;
pub mod signature;
pub mod transport;

pub use jwt::{Claims, JwtKeys, TokenError, mint_token};
pub use signature::SignatureConfig;
pub use transport::TransportPolicy;
