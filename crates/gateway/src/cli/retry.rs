//! `retry`: redrive dead-lettered messages, by id or by filter.

use clap::Args;
use serde_json::Value;

use super::api::ApiArgs;
use super::messages::print_messages;
use super::output::print_json;
use crate::client::{Answer, ClientError};
use crate::http::dto::MessageResource;

/// Which dead-lettered messages to send again: ids, or `--dead-lettered` with filters.
#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The ids of dead-lettered messages (UUIDs).
    #[arg(required_unless_present = "dead_lettered", conflicts_with = "dead_lettered")]
    ids: Vec<String>,
    /// Every dead-lettered message the filters match (at most `--limit`, the newest first).
    #[arg(long)]
    dead_lettered: bool,
    /// Only messages to this number (E.164).
    #[arg(long, requires = "dead_lettered")]
    phone: Option<String>,
    /// Only messages created at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME", requires = "dead_lettered")]
    from: Option<String>,
    /// Only messages created before this RFC 3339 time.
    #[arg(long, value_name = "TIME", requires = "dead_lettered")]
    to: Option<String>,
    /// Only messages with this application reference.
    #[arg(long, requires = "dead_lettered")]
    reference: Option<String>,
    /// At most this many, 1 … 1000 (the gateway's default is 100).
    #[arg(long, requires = "dead_lettered")]
    limit: Option<u32>,
}

/// Redrives; prints the messages as they are now (`pending`), or the API's JSON with `--json`.
/// With ids, each is tried: the ones that cannot be redriven are reported and the exit is 1.
pub async fn run(args: RetryArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    if args.dead_lettered {
        let query: Vec<(&str, String)> = [
            ("phone", args.phone.clone()),
            ("from", args.from.clone()),
            ("to", args.to.clone()),
            ("reference", args.reference.clone()),
            ("limit", args.limit.map(|l| l.to_string())),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
        let answer = client.redrive_matching(&query).await?;
        if args.api.json {
            print_json(&answer.raw);
        } else if answer.body.messages.is_empty() {
            println!("no dead-lettered message matches");
        } else {
            print_messages(&answer.body.messages);
            println!("{} redriven", answer.body.redriven);
        }
        return Ok(());
    }
    each_id(&args.api, &args.ids, "redriven", |id| client.redrive(id)).await
}

/// Runs `call` for each id in turn; prints what it answered (a table, or the API's answers with
/// `--json`) and reports each refusal on stderr, failing if there was one.
pub(super) async fn each_id<'a, F, Fut>(api: &ApiArgs, ids: &'a [String], done_word: &str, call: F) -> anyhow::Result<()>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<Answer<MessageResource>, ClientError>>,
{
    let (mut done, mut raw, mut refused) = (Vec::new(), Vec::new(), 0);
    for id in ids {
        match call(id).await {
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
    if api.json {
        print_json(&Value::Array(raw));
    } else if !done.is_empty() {
        print_messages(&done);
        println!("{} {done_word}", done.len());
    }
    if refused > 0 {
        anyhow::bail!("{refused} of {} could not be {done_word}", ids.len());
    }
    Ok(())
}
