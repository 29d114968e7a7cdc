//! The built-in Twilio emulator, used when no Twilio credentials are set (the embedded default):
//! served under [`EMULATOR_PREFIX`] on the gateway's own port, to clients on this machine only.
//! Compiled in with the `emulator` feature (on by default).

use std::net::SocketAddr;

use axum::Router;
use secrecy::SecretString;
use twilio_emulator::{Emulator, EmulatorConfig};

use crate::http::problem::ApiError;

/// Path under which the built-in emulator is served.
pub const EMULATOR_PREFIX: &str = "/emulator";

/// The emulator's routes, its account SID and its auth token (which signs the webhooks this
/// gateway accepts).
pub(crate) struct Embedded {
    pub router: Router,
    pub account_sid: String,
    pub auth_token: SecretString,
}

/// Starts the emulator, configured from the `EMULATOR_*` variables, posting inbound messages to
/// `inbound_url`; `business_number` is the sender it serves.
pub(crate) fn start(inbound_url: String, senders: &crate::domain::Senders) -> anyhow::Result<Embedded> {
    let mut config = EmulatorConfig::from_env()?;
    // The emulator's token signs the webhooks this gateway accepts: never the well-known default
    // on a served port.
    if std::env::var_os("EMULATOR_AUTH_TOKEN").is_none() {
        config.auth_token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    }
    config.inbound_webhook_url.get_or_insert(inbound_url);
    // The number a Messaging Service send goes out from (and inbound messages arrive at).
    if let Some(first) = senders.numbers().first() {
        config.business_number = first.as_e164().to_owned();
    }
    if let Some(service) = senders.service() {
        config.messaging_service_sid = Some(service.as_str().to_owned());
    }
    let emulator = Emulator::new(config);
    Ok(Embedded {
        router: emulator.router().layer(axum::middleware::from_fn(loopback_only)),
        account_sid: emulator.account_sid().to_owned(),
        auth_token: SecretString::from(emulator.auth_token().to_owned()),
    })
}

/// The built-in emulator (and its control endpoints, which inject signed webhooks) answers only
/// clients on this machine.
async fn loopback_only(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let peer = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if peer.is_some_and(|ip| ip.is_loopback()) {
        next.run(request).await
    } else {
        ApiError::Forbidden("the built-in Twilio emulator only answers clients on this machine".into()).into_response()
    }
}
