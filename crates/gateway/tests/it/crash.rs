//! The real binary, killed with SIGKILL while Twilio is still answering its send: after a restart
//! the message is sent exactly once (the lost answer is reconciled with Twilio) and still
//! reaches `read`. Loopback only, bounded in time.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twilio_emulator::Counters;
use whatsapp_gateway::domain::{AttemptOutcome, MessageStatus};
use whatsapp_gateway::http::dto::DeliveryStatusView;

use crate::helpers::process::{BIN, Killed, emulator_url, free_port};

const SECRET: &str = "crash-test-secret-0123456789";

fn start_emulator() -> (Killed, String) {
    start_emulator_with(&[
        ("EMULATOR_LATENCY_MS", "2000"),
        ("EMULATOR_DELAY_SENT_MS", "9000"),
        ("EMULATOR_DELAY_DELIVERED_MS", "9300"),
        ("EMULATOR_DELAY_READ_MS", "9600"),
    ])
}

fn start_emulator_with(settings: &[(&str, &str)]) -> (Killed, String) {
    let mut child = Command::new(BIN)
        .arg("emulator")
        .envs([("EMULATOR_BIND_ADDR", "127.0.0.1:0"), ("EMULATOR_ENFORCE_WINDOW", "false"), ("RUST_LOG", "warn")])
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = emulator_url(&mut child);
    (Killed(child), url)
}

fn start_gateway(dir: &std::path::Path, port: u16, emulator: &str) -> Killed {
    start_gateway_with(dir, port, emulator, None)
}

fn start_gateway_with(dir: &std::path::Path, port: u16, emulator: &str, fault: Option<&str>) -> Killed {
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env("WG_FAULT_ABORT_AFTER_COMMIT", fault.unwrap_or_default())
        .envs([
            ("DATABASE_URL", format!("sqlite://{}/gateway.db", dir.display())),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000".into()),
            ("TWILIO_AUTH_TOKEN", "emulator-token".into()),
            ("TWILIO_WHATSAPP_FROM", "+14155238886".into()),
            ("TWILIO_API_BASE_URL", emulator.to_owned()),
            ("TWILIO_TIMEOUT_MS", "5000".into()),
            ("WORKER_LEASE_MS", "6000".into()),
            ("RETRY_BASE_MS", "100".into()),
            ("WORKER_POLL_MS", "50".into()),
            ("JWT_SECRET", SECRET.into()),
            ("RUST_LOG", "warn".into()),
            // The recipients never wrote (the emulator's window is off too).
            ("WHATSAPP_WINDOW_CHECK", "false".into()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_killed_mid_send_sends_exactly_once_after_restart() {
    let dir = std::env::temp_dir().join(format!("wg-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let token = whatsapp_gateway::security::mint_token(&SECRET.to_owned().into(), "crash-test", 600).unwrap();
    let (_emulator, emulator_url) = start_emulator();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let mut gateway = start_gateway(&dir, port, &emulator_url);
    wait_until("the gateway to start", Duration::from_secs(20), async || http.get(format!("{base}/healthz")).send().await.is_ok()).await;
    let created: Value = http
        .post(format!("{base}/api/v1/whatsapp/send"))
        .bearer_auth(&token)
        .json(&json!({"to": "+14155550150", "body": "exactly once"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    // Twilio has stored the message and is still answering: kill the gateway now.
    let counters = format!("{emulator_url}/_emulator/counters");
    wait_until("the emulator to receive the send", Duration::from_secs(10), async || {
        let c: Counters = http.get(&counters).send().await.unwrap().json().await.unwrap();
        c.messages_created == 1
    })
    .await;
    gateway.0.kill().unwrap();
    gateway.0.wait().unwrap();
    drop(gateway);

    let _gateway = start_gateway(&dir, port, &emulator_url);
    wait_until("the restarted gateway", Duration::from_secs(20), async || http.get(format!("{base}/healthz")).send().await.is_ok()).await;
    let status_url = format!("{base}/api/v1/whatsapp/delivery-status?id={id}");
    let mut last = None;
    wait_until("the message to be read", Duration::from_secs(30), async || {
        let status: DeliveryStatusView = http.get(&status_url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let read = status.message.status == MessageStatus::Read;
        last = Some(status);
        read
    })
    .await;

    let c: Counters = http.get(&counters).send().await.unwrap().json().await.unwrap();
    assert_eq!(c.created_to("+14155550150"), 1, "sent exactly once: {c:?}");
    let outcomes: Vec<AttemptOutcome> = last.unwrap().send_attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [AttemptOutcome::Reconciled]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for a child that is expected to die by itself (the fault hook aborts it).
async fn wait_for_exit(gateway: &mut Killed) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = gateway.0.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the gateway did not abort after the commit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn delivery_status(http: &reqwest::Client, base: &str, token: &str, id: &str) -> DeliveryStatusView {
    let url = format!("{base}/api/v1/whatsapp/delivery-status?id={id}");
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_commit_and_answer_loses_nothing_and_applies_nothing_twice() {
    let dir = std::env::temp_dir().join(format!("wg-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let token = whatsapp_gateway::security::mint_token(&SECRET.to_owned().into(), "crash-test", 600).unwrap();
    // Callbacks come seconds after the send, and are retried for a while when unanswered.
    let (_emulator, emulator_url) = start_emulator_with(&[
        ("EMULATOR_DELAY_SENT_MS", "4000"),
        ("EMULATOR_DELAY_DELIVERED_MS", "4200"),
        ("EMULATOR_DELAY_READ_MS", "4400"),
        ("EMULATOR_CALLBACK_MAX_ATTEMPTS", "12"),
    ]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let healthy = async || http.get(format!("{base}/healthz")).send().await.is_ok();
    let send = async || {
        http.post(format!("{base}/api/v1/whatsapp/send"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "crash-key")
            .json(&json!({"to": "+14155550151", "body": "committed, then the crash", "reference": "crash-on-insert"}))
            .send()
            .await
    };

    // 1. The batch storing the message commits; the process dies before anyone is answered.
    let mut gateway = start_gateway_with(&dir, port, &emulator_url, Some("crash-on-insert"));
    wait_until("the gateway to start", Duration::from_secs(20), healthy).await;
    let answer = send().await;
    assert!(answer.as_ref().map_or(true, |r| !r.status().is_success()), "no success was answered: {answer:?}");
    assert!(!wait_for_exit(&mut gateway).await.success(), "aborted");
    drop(gateway);

    // The client retries with its key after the restart: the message committed before the crash.
    let mut gateway = start_gateway(&dir, port, &emulator_url);
    wait_until("the restarted gateway", Duration::from_secs(20), healthy).await;
    let retried = send().await.unwrap();
    assert_eq!(retried.status(), 202);
    let message: whatsapp_gateway::http::dto::MessageResource = retried.json().await.unwrap();
    let listed: whatsapp_gateway::http::dto::MessagePage = http
        .get(format!("{base}/api/v1/whatsapp/messages?reference=crash-on-insert"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [message.id], "one message, stored once");
    let id = message.id.to_string();

    // 2. Once Twilio has it, a status callback's batch commits and the process dies unanswered.
    let mut sid = None;
    wait_until("Twilio's answer to be recorded", Duration::from_secs(20), async || {
        sid = delivery_status(&http, &base, &token, &id).await.message.message_sid;
        sid.is_some()
    })
    .await;
    let sid = sid.unwrap();
    gateway.0.kill().unwrap();
    gateway.0.wait().unwrap();
    let mut gateway = start_gateway_with(&dir, port, &emulator_url, Some(sid.as_str()));
    assert!(!wait_for_exit(&mut gateway).await.success(), "aborted after committing the `sent` callback");
    drop(gateway);

    // Twilio retries the unanswered callback: acknowledged, not applied or logged again.
    let _gateway = start_gateway(&dir, port, &emulator_url);
    wait_until("the restarted gateway", Duration::from_secs(20), healthy).await;
    let mut last = None;
    wait_until("the message to be read", Duration::from_secs(40), async || {
        let status = delivery_status(&http, &base, &token, &id).await;
        let read = status.message.status == MessageStatus::Read;
        last = Some(status);
        read
    })
    .await;
    let last = last.unwrap();
    let callbacks: Vec<MessageStatus> =
        last.history.iter().filter(|e| e.source == whatsapp_gateway::domain::StatusSource::Callback).map(|e| e.status).collect();
    assert_eq!(callbacks, [MessageStatus::Sent, MessageStatus::Delivered, MessageStatus::Read], "each callback once: {last:#?}");
    let counters: Counters = http.get(format!("{emulator_url}/_emulator/counters")).send().await.unwrap().json().await.unwrap();
    assert_eq!(counters.created_to("+14155550151"), 1, "sent exactly once: {counters:?}");
    assert!(counters.callbacks_attempted > counters.callbacks_answered_2xx, "the crashed callback was retried: {counters:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
