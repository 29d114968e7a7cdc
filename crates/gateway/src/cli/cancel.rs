//! `cancel`: withdraw messages Twilio does not have yet.

use super::api::ApiArgs;
use super::retry::each_id;
use clap::Args;

/// The messages to withdraw.
#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The ids of pending, scheduled or retrying messages (UUIDs).
    #[arg(required = true)]
    ids: Vec<String>,
}

/// Cancels each; prints the canceled messages (or the API's answers with `--json`). The ones
/// that could not be canceled are reported on stderr and the exit is 1.
pub async fn run(args: CancelArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    each_id(&args.api, &args.ids, "canceled", |id| client.cancel(id)).await
}
