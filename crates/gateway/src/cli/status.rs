//! `status`: one message's status, timestamps, history and send attempts.

use clap::Args;

use super::api::ApiArgs;
use super::output::{or_dash, print_json, print_table};
use crate::client::Lookup;
use crate::http::dto::{DeliveryStatusView, MessageResource};

/// Which message: its id, or Twilio's SID with `--sid`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The gateway's message id (a UUID).
    #[arg(required_unless_present = "sid", conflicts_with = "sid")]
    id: Option<String>,
    /// Twilio's message SID (`SM…` / `MM…`) instead of the id.
    #[arg(long)]
    sid: Option<String>,
}

/// Looks the message up; prints it for people (or the API's answer with `--json`).
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let lookup = match (args.id, args.sid) {
        (Some(id), _) => Lookup::Id(id),
        (None, Some(sid)) => Lookup::Sid(sid),
        (None, None) => anyhow::bail!("give a message id or --sid"),
    };
    let answer = client.delivery_status(&lookup).await?;
    if args.api.json {
        print_json(&answer.raw);
    } else {
        print_status(&answer.body);
    }
    Ok(())
}

fn print_message(m: &MessageResource) {
    let sid = m.message_sid.as_ref().map(|s| s.as_str());
    let error = m.error_code.map(|code| format!("{code} {}", m.error_message.as_deref().unwrap_or("")));
    let fields = [
        ("id", Some(m.id.to_string())),
        ("message_sid", sid.map(str::to_owned)),
        ("direction", Some(m.direction.as_str().to_owned())),
        ("from", Some(m.from.clone())),
        ("to", Some(m.to.clone())),
        ("status", Some(m.status.to_string())),
        ("error", error.map(|e| e.trim_end().to_owned())),
        ("reference", m.reference.clone()),
        ("attempts", Some(m.attempts.to_string())),
        ("created_at", Some(m.created_at.clone())),
        ("queued_at", m.queued_at.clone()),
        ("sent_at", m.sent_at.clone()),
        ("delivered_at", m.delivered_at.clone()),
        ("read_at", m.read_at.clone()),
        ("failed_at", m.failed_at.clone()),
        ("next_attempt_at", m.next_attempt_at.clone()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            println!("{name:<16}{value}");
        }
    }
}

fn print_status(view: &DeliveryStatusView) {
    print_message(&view.message);
    println!("\nhistory");
    let history: Vec<Vec<String>> = view
        .history
        .iter()
        .map(|e| {
            let change = match e.previous_status {
                Some(previous) => format!("{previous} → {}", e.status),
                None => format!("→ {}", e.status),
            };
            vec![
                e.at.clone(),
                e.source.to_string(),
                change,
                if e.applied { String::new() } else { "(not applied)".to_owned() },
                e.error_code.map(|c| format!("error {c}")).unwrap_or_default(),
                e.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["at", "source", "status", "note", "error", "detail"], &history);
    println!("\nsend attempts");
    if view.send_attempts.is_empty() {
        println!("none yet");
        return;
    }
    let attempts: Vec<Vec<String>> = view
        .send_attempts
        .iter()
        .map(|a| {
            vec![
                a.attempt.to_string(),
                a.outcome.to_string(),
                a.started_at.clone(),
                or_dash(a.finished_at.as_deref()),
                a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                a.message_sid.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                match (a.error_code, &a.error_message) {
                    (Some(code), message) => format!("{code} {}", message.as_deref().unwrap_or("")),
                    (None, Some(message)) => message.clone(),
                    (None, None) => String::new(),
                },
            ]
        })
        .collect();
    print_table(&["#", "outcome", "started", "finished", "http", "sid", "error"], &attempts);
}
