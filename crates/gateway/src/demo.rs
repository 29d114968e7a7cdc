//! `serve --demo`: shows one message going through its whole lifecycle against the built-in
//! emulator: a user writes first (opening WhatsApp's 24-hour window, through the emulator's
//! control endpoint, as the README's walk-through does), the gateway answers, and each status
//! change is printed as Twilio's callbacks arrive, until `read`.

use std::time::Duration;

use crate::domain::{Content, Granularity, MessageId, MessageStatus, NewOutboundMessage, PhoneNumber, Priority, now_ms};
use crate::http::dto::rfc3339;
use crate::service::{Gateway, Lookup, SendMode};
use crate::startup::Application;

/// What the demo needs from a running application.
pub struct DemoTarget {
    gateway: Gateway,
    embedded: bool,
    base_url: String,
}

impl From<&Application> for DemoTarget {
    fn from(app: &Application) -> Self {
        Self { gateway: app.gateway().clone(), embedded: app.uses_embedded_emulator(), base_url: app.base_url().to_owned() }
    }
}

const DEMO_USER: &str = "+14155550100";

/// Runs the demo; returns when the message is read (or after 60 s).
pub async fn run(target: DemoTarget) -> anyhow::Result<()> {
    if !target.embedded {
        println!("demo skipped: Twilio credentials are set, and the demo only talks to the built-in emulator");
        return Ok(());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("\n== demo: {DEMO_USER} writes to the business first (opens the 24-hour window)");
    let inbound = serde_json::json!({"From": DEMO_USER, "Body": "Hi! Where is my order?", "ProfileName": "Ada"});
    let answer = reqwest::Client::new().post(format!("{}/emulator/_emulator/inbound", target.base_url)).json(&inbound).send().await?;
    let delivered: serde_json::Value = answer.json().await?;
    println!("   webhook answered HTTP {}", delivered["status"]);
    let id = MessageId::new();
    let message = NewOutboundMessage {
        id,
        to: PhoneNumber::parse(DEMO_USER)?,
        from: None,
        content: Content::FreeForm { body: Some("Your order #1042 is on its way.".into()), media_urls: vec![] },
        priority: Priority::HIGHEST,
        send_at: None,
        reference: Some("order-1042".into()),
        metadata: None,
        idempotency_key: None,
        validity_s: None,
        fallback: None,
        force: false,
    };
    target.gateway.send(message, SendMode::Queue).await?;
    println!("== demo: message {id} queued; following its status history:");
    let mut shown = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = target.gateway.delivery_status(&Lookup::Id(id)).await?;
        for entry in status.history.iter().skip(shown) {
            let from = entry.previous_status.map_or("(new)".to_owned(), |s| s.to_string());
            println!("   {}  {from:>9} -> {:<9} ({})", rfc3339(entry.occurred_at), entry.new_status.to_string(), entry.source);
        }
        shown = status.history.len();
        let current = status.message.status();
        if current.is_terminal() || current == MessageStatus::Read || tokio::time::Instant::now() >= deadline {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let buckets = target.gateway.metrics(Granularity::Hour, now_ms() - 3_600_000, now_ms() + 1, None).await?;
    let (sent, delivered, read) = buckets.iter().fold((0, 0, 0), |acc, b| (acc.0 + b.sent, acc.1 + b.delivered, acc.2 + b.read));
    println!("== demo: final status {status}; metrics this hour: sent={sent} delivered={delivered} read={read}");
    println!("== try it yourself (another terminal):");
    println!("   TOKEN=$(cargo run -q -- token)");
    println!("   curl -s -H \"Authorization: Bearer $TOKEN\" '{}/api/v1/whatsapp/delivery-status?id={id}'\n", target.base_url);
    Ok(())
}
