//! `messages`: the message list, with the list endpoint's filters and paging.

use clap::Args;
use serde_json::{Value, json};

use super::api::ApiArgs;
use super::output::{or_dash, print_json, print_table};
use crate::http::dto::MessageResource;

/// Filters and paging, named as the API's query parameters.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Only messages in this status (`pending`, `sent`, `delivered`, `read`, `failed`…).
    #[arg(long)]
    status: Option<String>,
    /// Only `outbound` or `inbound` messages.
    #[arg(long)]
    direction: Option<String>,
    /// Only messages to or from this number (E.164).
    #[arg(long)]
    phone: Option<String>,
    /// Only messages created at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only messages created before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only messages with this application reference.
    #[arg(long)]
    reference: Option<String>,
    /// Page size, 1 … 500 (the gateway's default is 50).
    #[arg(long)]
    limit: Option<u32>,
    /// Start after this cursor (a page's `next_cursor`).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow `next_cursor` to the last page and print every message.
    #[arg(long)]
    all: bool,
}

impl MessagesArgs {
    fn query(&self, cursor: Option<&String>) -> Vec<(&'static str, String)> {
        let filters = [
            ("status", self.status.clone()),
            ("direction", self.direction.clone()),
            ("phone", self.phone.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("reference", self.reference.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", cursor.cloned()),
        ];
        filters.into_iter().filter_map(|(name, value)| value.map(|v| (name, v))).collect()
    }
}

/// Lists one page (or every page with `--all`); a table for people, the page's JSON with `--json`.
pub async fn run(args: MessagesArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let mut cursor = args.cursor.clone();
    let (mut messages, mut raw_messages) = (Vec::new(), Vec::new());
    let next_cursor = loop {
        let answer = client.messages(&args.query(cursor.as_ref())).await?;
        if let Some(Value::Array(page)) = answer.raw.get("messages") {
            raw_messages.extend(page.iter().cloned());
        }
        messages.extend(answer.body.messages);
        match answer.body.next_cursor {
            Some(next) if args.all => cursor = Some(next),
            next => break next,
        }
    };
    if args.api.json {
        print_json(&json!({ "messages": raw_messages, "next_cursor": next_cursor }));
        return Ok(());
    }
    print_messages(&messages);
    if let Some(next) = next_cursor {
        eprintln!("more messages: add --cursor {next} (or --all)");
    }
    Ok(())
}

pub(super) fn print_messages(messages: &[MessageResource]) {
    if messages.is_empty() {
        println!("no messages");
        return;
    }
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.created_at.clone(),
                m.direction.as_str().to_owned(),
                m.status.to_string(),
                m.from.clone(),
                m.to.clone(),
                or_dash(m.reference.as_deref()),
                m.error_code.map(|c| c.to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["id", "created", "direction", "status", "from", "to", "reference", "error"], &rows);
}
