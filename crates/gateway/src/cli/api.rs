//! What every API verb takes: where the gateway is, the token, and how to print.

use clap::Args;

use crate::client::GatewayClient;

/// Where the gateway is, who is calling, and how to print.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The gateway's base URL.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A bearer token for the API (`whatsapp-gateway token` prints one for the development secret).
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON for scripts (the API's answer; `bulk`: its summary) instead of text for people.
    #[arg(long)]
    pub json: bool,
}

impl ApiArgs {
    /// A client of the gateway, or a clear message on how to get a token.
    pub fn client(&self) -> anyhow::Result<GatewayClient> {
        let Some(token) = self.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
            anyhow::bail!(
                "no API token: pass --token or set GATEWAY_TOKEN (for a gateway on the development secret: \
                 `export GATEWAY_TOKEN=$(whatsapp-gateway token)`; otherwise ask whoever runs it for one)"
            );
        };
        Ok(GatewayClient::new(&self.url, token)?)
    }
}
