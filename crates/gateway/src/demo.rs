//! `serve --demo`: shows one message going through its whole lifecycle against the built-in
//! emulator: a user writes first (opening WhatsApp's 24-hour window), the gateway answers, and
//! each status change is printed as Twilio's callbacks arrive, until `read`.

use std::time::Duration;

use twilio_emulator::{Emulator, InboundMessage};

use crate::domain::{Content, MessageId, NewOutboundMessage, PhoneNumber, Priority};
use crate::http::dto::rfc3339;
use crate::service::{Gateway, SendMode};
use crate::startup::Application;
use crate::store::{Granularity, now_ms};

/// What the demo needs from a running application.
pub struct DemoTarget {
    gateway: Gateway,
    emulator: Option<Emulator>,
    base_url: String,
}

impl From<&Application> for DemoTarget {
    fn from(app: &Application) -> Self {
        Self { gateway: app.gateway().clone(), emulator: app.emulator().cloned(), base_url: app.base_url().to_owned() }
    }
}

const DEMO_USER: &str = "+14155550100";

/// Runs the demo; returns when the message is read (or after 60 s).
pub async fn run(target: DemoTarget) -> anyhow::Result<()> {
    let Some(emulator) = target.emulator else {
        println!("demo skipped: Twilio credentials are set, and the demo only talks to the built-in emulator");
        return Ok(());
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("\n== demo: {DEMO_USER} writes to the business first (opens the 24-hour window)");
    let delivery = emulator
        .inject_inbound(InboundMessage {
            from: DEMO_USER.into(),
            body: "Hi! Where is my order?".into(),
            profile_name: Some("Ada".into()),
            ..Default::default()
        })
        .await?;
    println!("   webhook answered HTTP {}", delivery.status);
    let id = MessageId::new();
    let message = NewOutboundMessage {
        id,
        to: PhoneNumber::parse(DEMO_USER)?,
        content: Content::FreeForm { body: Some("Your order #1042 is on its way.".into()), media_urls: vec![] },
        priority: Priority::HIGHEST,
        send_at: None,
        reference: Some("order-1042".into()),
        metadata: None,
        idempotency_key: None,
    };
    target.gateway.send(message, SendMode::Queue).await?;
    println!("== demo: message {id} queued; following its status history:");
    let store = target.gateway.store();
    let mut shown = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let history = store.status_history(id).await?;
        for entry in history.iter().skip(shown) {
            let from = entry.previous_status.map_or("(new)".to_owned(), |s| s.to_string());
            println!("   {}  {from:>9} -> {:<9} ({})", rfc3339(entry.occurred_at), entry.new_status.to_string(), entry.source);
        }
        shown = history.len();
        if store.message(id).await?.is_some_and(|m| m.status().is_terminal() || m.status() == crate::domain::MessageStatus::Read) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = store.message(id).await?.ok_or_else(|| anyhow::anyhow!("the demo message vanished"))?;
    let buckets = store.metrics_buckets(Granularity::Hour, now_ms() - 3_600_000, now_ms() + 1, "").await?;
    let (sent, delivered, read) = buckets.iter().fold((0, 0, 0), |acc, b| (acc.0 + b.sent, acc.1 + b.delivered, acc.2 + b.read));
    println!("== demo: final status {}; metrics this hour: sent={sent} delivered={delivered} read={read}", message.status());
    println!("== try it yourself (another terminal):");
    println!("   TOKEN=$(cargo run -q -- token)");
    println!("   curl -s -H \"Authorization: Bearer $TOKEN\" '{}/api/v1/whatsapp/delivery-status?id={id}'\n", target.base_url);
    Ok(())
}
