//! `send`: one message through a running gateway.

use clap::Args;
use serde_json::{Map, Value};

use super::api::ApiArgs;
use super::output::print_json;
use crate::client::SendRequest;
use crate::http::dto::MessageResource;

/// The message to send; the gateway checks every field and names each bad one.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Recipient, E.164 (`+14155550123`, `whatsapp:` optional).
    #[arg(long)]
    to: String,
    /// Free-form text (delivered only within 24 hours of the user's last message).
    #[arg(long)]
    body: Option<String>,
    /// A media URL (repeat for several, at most 10).
    #[arg(long = "media-url", value_name = "URL")]
    media_urls: Vec<String>,
    /// A Content Template SID (`HX…`), instead of `--body` / `--media-url`.
    #[arg(long)]
    content_sid: Option<String>,
    /// A template variable (repeat for several): `--var 1=Ada --var 2=Tuesday`.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// The application's own id (an order or user id); `messages --reference` filters on it.
    #[arg(long)]
    reference: Option<String>,
    /// Queue priority, 1 (highest) … 10; the gateway's default is 5.
    #[arg(long)]
    priority: Option<i64>,
    /// Do not send before this RFC 3339 time (`2026-01-31T09:30:00Z`).
    #[arg(long, value_name = "TIME")]
    send_at: Option<String>,
    /// A JSON object kept with the message: `--metadata '{"campaign": "spring"}'`.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    metadata: Option<Value>,
    /// Makes the send idempotent: a retry with the same key and message sends nothing twice.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Seconds it may wait to be sent once due, 1 … 36000 (the default): not sent in time, it ends
    /// `expired`.
    #[arg(long, value_name = "SECONDS")]
    validity_s: Option<i64>,
    /// The template (`HX…`) to send instead of `--body` / `--media-url` if the recipient has
    /// not written in the last 24 hours (without one, such a send is refused).
    #[arg(long, value_name = "HX…")]
    fallback_content_sid: Option<String>,
    /// A variable of the fallback template (repeat for several): `--fallback-var 1=Ada`.
    #[arg(long = "fallback-var", value_name = "KEY=VALUE", value_parser = parse_var, requires = "fallback_content_sid")]
    fallback_vars: Vec<(String, String)>,
    /// Send even if the recipient is suppressed (Twilio refused its number for good before).
    #[arg(long)]
    force: bool,
    /// Send to Twilio within the call (answered 201) instead of queueing (202).
    #[arg(long)]
    immediate: bool,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

impl SendArgs {
    fn request(&self) -> SendRequest {
        let object =
            |vars: &[(String, String)]| -> Map<String, Value> { vars.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect() };
        let variables = object(&self.vars);
        let fallback = self.fallback_content_sid.as_ref().map(|sid| {
            let mut fallback = Map::new();
            fallback.insert("content_sid".to_owned(), Value::String(sid.clone()));
            if !self.fallback_vars.is_empty() {
                fallback.insert("content_variables".to_owned(), Value::Object(object(&self.fallback_vars)));
            }
            Value::Object(fallback)
        });
        SendRequest {
            to: Some(self.to.clone()),
            body: self.body.clone(),
            media_urls: self.media_urls.clone(),
            content_sid: self.content_sid.clone(),
            content_variables: (!variables.is_empty()).then_some(Value::Object(variables)),
            priority: self.priority.map(Value::from),
            send_at: self.send_at.clone(),
            reference: self.reference.clone(),
            metadata: self.metadata.clone(),
            mode: self.immediate.then(|| "immediate".to_owned()),
            validity_s: self.validity_s,
            fallback,
            force: self.force.then_some(true),
        }
    }
}

/// Sends the message; prints its id and status (or the resource with `--json`).
pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let answer = client.send(&args.request(), args.idempotency_key.as_deref()).await?;
    if args.api.json {
        print_json(&answer.raw);
    } else {
        println!("{}", describe(&answer.body, answer.replayed));
    }
    Ok(())
}

fn describe(m: &MessageResource, replayed: bool) -> String {
    let mut text = format!("{} {}", m.id, m.status);
    if let Some(sid) = &m.message_sid {
        text.push_str(&format!(" (Twilio {})", sid.as_str()));
    }
    if let Some(code) = m.error_code {
        text.push_str(&format!(" error {code}: {}", m.error_message.as_deref().unwrap_or("")));
    }
    if replayed {
        text.push_str(" — replayed: this Idempotency-Key was used before, nothing was sent again");
    }
    text
}
