//! Security primitives the HTTP layer applies: bearer tokens ([`jwt`]) and their scopes ([`scope`]), Twilio signature settings
//! ([`signature`]; the HMAC itself is the `twilio-signature` crate) and the transport policy
//! ([`transport`]). No HTTP framework here, so the CLI mints tokens with the same code.

pub mod destination;
pub mod jwt;
pub mod scope;
pub mod sendgrid;
pub mod signature;
pub mod standard_webhooks;
pub mod transport;

pub use jwt::{Claims, JwtKeys, TokenError, mint_scoped_token, mint_token};
pub use scope::{Scope, UnknownScope, parse_scopes};
pub use signature::SignatureConfig;
pub use standard_webhooks::{InvalidSecret, WebhookSecret};
pub use transport::TransportPolicy;
