//! [`AppState`]: everything an HTTP handler can reach. The gateway service is the only way to
//! the store and the queue; the rest are the request-level concerns (tokens, signatures,
//! transport, shared rate-limit and idempotency state).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::config::RateLimits;
use crate::security::{JwtKeys, SignatureConfig, TransportPolicy};
use crate::service::Gateway;
use crate::shared::SharedState;

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The gateway's operations.
    pub gateway: Gateway,
    /// Bearer-token verification.
    pub jwt: Arc<JwtKeys>,
    /// Webhook signature checking.
    pub signatures: Arc<SignatureConfig>,
    /// False while shutting down (readiness then fails).
    pub ready: Arc<AtomicBool>,
    /// TLS, HTTPS enforcement and proxy trust.
    pub transport: TransportPolicy,
    /// Idempotency records and rate-limit counters (in process or in Redis).
    pub shared: Arc<dyn SharedState>,
    /// Rate limits.
    pub rate_limits: RateLimits,
}
