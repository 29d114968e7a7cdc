//! `cancel`: withdraw messages Twilio does not have yet.

use clap::Args;
use serde_json::Value;

use super::messages::print_messages;
use super::output::print_json;
use super::remote::ApiArgs;

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
    let (mut done, mut raw, mut refused) = (Vec::new(), Vec::new(), 0);
    for id in &args.ids {
        match client.cancel(id).await {
            Ok(answer) => {
                raw.push(answer.raw);
                done.push(answer.body);
            }
            Err(e) => {
                refused += 1;
                eprintln!("{id}: {e}");
            }
        }
    }
    if args.api.json {
        print_json(&Value::Array(raw));
    } else if !done.is_empty() {
        print_messages(&done);
        println!("{} canceled", done.len());
    }
    if refused > 0 {
        anyhow::bail!("{refused} of {} could not be canceled", args.ids.len());
    }
    Ok(())
}
