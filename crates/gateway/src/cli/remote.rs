//! The verbs that talk to a running gateway over its HTTP API: `send`, `status`, `messages`,
//! `metrics`, `retry`, `cancel`, `bulk`. They need no server configuration (no database, no secret): only
//! the gateway's URL (`--url` / `GATEWAY_URL`) and a bearer token (`--token` / `GATEWAY_TOKEN`).
//! Output is for people by default and the API's JSON with `--json`; a refusal prints the
//! problem detail and exits 1. `docs/cli.md` has the whole guide.

use clap::Subcommand;

use super::{bulk, cancel, messages, metrics, retry, send, status};

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
