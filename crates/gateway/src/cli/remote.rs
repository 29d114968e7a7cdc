//! The verbs that talk to a running gateway over its HTTP API: `send`, `status`, `messages`,
//! `metrics`, `retry`, `cancel`, `bulk`. They need no server configuration (no database, no secret): only
//! the gateway's URL (`--url` / `GATEWAY_URL`) and a bearer token (`--token` / `GATEWAY_TOKEN`).
//! Output is for people by default and the API's JSON with `--json`; a refusal prints the
//! problem detail and exits 1. `docs/cli.md` has the whole guide.

use clap::{Args, Subcommand};

use super::{bulk, cancel, messages, metrics, retry, send, status};
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

/// The API verbs, flattened into the top-level commands.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Send one message through a running gateway.
    Send(send::SendArgs),
    /// Show a message's status, timestamps, history and send attempts.
    Status(status::StatusArgs),
    /// List messages, newest first, with the list endpoint's filters.
    Messages(messages::MessagesArgs),
    /// Show delivery metrics: totals, rates, delivery times, error codes, buckets.
    Metrics(metrics::MetricsArgs),
    /// Redrive dead-lettered messages: by id, or every one a filter matches (`--dead-lettered`).
    Retry(retry::RetryArgs),
    /// Cancel messages Twilio does not have yet (pending, scheduled, retrying).
    Cancel(cancel::CancelArgs),
    /// Send one message per row of a CSV file: resumable, with a results CSV and a summary.
    Bulk(bulk::BulkArgs),
}

/// Runs one verb.
pub async fn run(command: RemoteCommand) -> anyhow::Result<()> {
    match command {
        RemoteCommand::Send(args) => send::run(args).await,
        RemoteCommand::Status(args) => status::run(args).await,
        RemoteCommand::Messages(args) => messages::run(args).await,
        RemoteCommand::Metrics(args) => metrics::run(args).await,
        RemoteCommand::Retry(args) => retry::run(args).await,
        RemoteCommand::Cancel(args) => cancel::run(args).await,
        RemoteCommand::Bulk(args) => bulk::run(args).await,
    }
}
