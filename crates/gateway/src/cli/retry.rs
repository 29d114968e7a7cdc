//! `retry`: redrive messages that ended badly (`POST /messages/{id}/retry`): each goes back to
//! `pending` and is sent again. An unknown id (404) or a message that cannot be redriven (409) is
//! reported and the others are still tried; any refusal makes the exit code 1.

use clap::Args;

use super::output::print_json;
use super::remote::ApiArgs;
use crate::domain::MessageId;

/// The messages to redrive.
#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Message ids (UUIDs).
    #[arg(required = true, value_name = "ID", value_parser = parse_id)]
    ids: Vec<MessageId>,
}

fn parse_id(text: &str) -> Result<MessageId, String> {
    text.parse().map_err(|_| format!("not a message id (a UUID): {text:?}"))
}

/// Redrives each message in turn; prints `<id> <status>` per message (a JSON line with `--json`).
pub async fn run(args: RetryArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let mut refused = 0;
    for id in &args.ids {
        match client.retry(*id).await {
            Ok(answer) if args.api.json => print_json(&answer.raw),
            Ok(answer) => println!("{} {}", answer.body.id, answer.body.status),
            Err(e) => {
                refused += 1;
                eprintln!("{id}: {e}");
            }
        }
    }
    if refused > 0 {
        anyhow::bail!("{refused} of {} messages were not redriven", args.ids.len());
    }
    Ok(())
}
