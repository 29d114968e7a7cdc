//! Synchronous faults on create: throttling, injected REST errors and 500s, the per-sender rate
//! cap, the concurrency cap, the random 500 share, and added latency.

use std::time::{Duration, Instant};

use serde_json::json;
use twilio_emulator::{Behaviour, EmulatorConfig, RestError};

use crate::helpers::*;

const TO: &str = "whatsapp:+14155550100";

fn too_many() -> serde_json::Value {
    json!({"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429})
}

#[tokio::test]
async fn throttle_first_answers_429_20429_then_201() {
    let t = start(fast_config()).await;
    t.emu.set_behaviour(TO, Behaviour { throttle_first: 2, ..Behaviour::default() });
    for _ in 0..2 {
        assert_eq!(t.send_text(TO, None).await, (429, too_many()));
    }
    assert_eq!(t.send_text(TO, None).await.0, 201);
    assert_eq!(t.send_text("whatsapp:+14155550101", None).await.0, 201, "other recipients are not throttled");
    let counters = t.emu.counters();
    assert_eq!((counters.creates_rejected_429, counters.created_to(TO), counters.messages_created), (2, 1, 2));
}

#[tokio::test]
async fn server_error_first_and_rest_error_answer_without_storing() {
    let t = start(fast_config()).await;
    t.emu.set_behaviour(TO, Behaviour { server_error_first: 1, ..Behaviour::default() });
    let (status, body) = t.send_text(TO, None).await;
    assert_eq!((status, body["code"].as_u64(), body["status"].as_u64()), (500, Some(20500), Some(500)));
    assert_eq!(t.send_text(TO, None).await.0, 201);

    let rest_error = RestError { status: 400, code: 21610, message: "Attempt to send to unsubscribed recipient".into() };
    t.emu.set_behaviour(TO, Behaviour { rest_error: Some(rest_error), ..Behaviour::default() });
    let (status, body) = t.send_text(TO, None).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code":21610,"message":"Attempt to send to unsubscribed recipient",
                "more_info":"https://www.twilio.com/docs/errors/21610","status":400})
        )
    );
    let counters = t.emu.counters();
    assert_eq!((counters.creates_rejected_500, counters.creates_rejected_4xx, counters.created_to(TO)), (1, 1, 1));
    let (_, page) = t.get(&t.messages_path()).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "rejected creates store nothing");
}

#[tokio::test]
async fn the_sender_rate_cap_rejects_excess_creates_per_sender() {
    let t = start(EmulatorConfig { sender_rate_per_sec: 3, ..fast_config() }).await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(t.send_text(TO, None).await.0);
    }
    assert_eq!(codes, [201, 201, 201, 429, 429]);
    let other = [("To", TO), ("From", "whatsapp:+14155230000"), ("Body", "x")];
    assert_eq!(t.create(&other).await.0, 201, "the cap is per sender");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(t.send_text(TO, None).await.0, 201, "the window slides");
    let counters = t.emu.counters();
    assert_eq!(counters.created_by_sender.get("+14155238886"), Some(&4));
    assert_eq!(counters.creates_rejected_429, 2);
}

#[tokio::test]
async fn the_concurrency_cap_rejects_creates_beyond_the_limit() {
    let t = start(EmulatorConfig { max_concurrent_requests: 2, latency: Duration::from_millis(1000), ..fast_config() }).await;
    let url = format!("{}{}", t.base, t.messages_path());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let request = t.http.post(&url).basic_auth(t.emu.account_sid(), Some(t.emu.auth_token())).form(&[
            ("To", format!("whatsapp:+1415555010{i}")),
            ("From", FROM.to_owned()),
            ("Body", "x".to_owned()),
        ]);
        set.spawn(async move { json_of(request.send().await.unwrap()).await });
    }
    let results: Vec<(u16, serde_json::Value)> = set.join_all().await;
    let mut codes: Vec<u16> = results.iter().map(|(status, _)| *status).collect();
    codes.sort_unstable();
    assert_eq!(codes, [201, 201, 429, 429, 429]);
    assert!(results.iter().filter(|(s, _)| *s == 429).all(|(_, body)| *body == too_many()));
    assert_eq!(t.send_text(TO, None).await.0, 201, "slots are freed after the reply");
}

#[tokio::test]
async fn an_error_500_share_of_one_fails_every_create() {
    let t = start(EmulatorConfig { error_500_share: 1.0, ..fast_config() }).await;
    for _ in 0..5 {
        let (status, body) = t.send_text(TO, None).await;
        assert_eq!((status, body["code"].as_u64()), (500, Some(20500)));
    }
    let counters = t.emu.counters();
    assert_eq!((counters.creates_rejected_500, counters.messages_created), (5, 0));
}

#[tokio::test]
async fn latency_delays_the_reply_after_the_message_is_stored() {
    let t = start(EmulatorConfig { latency: Duration::from_millis(300), enforce_window: false, ..fast_config() }).await;
    let rx = Receiver::start(t.emu.auth_token()).await;
    let started = Instant::now();
    let (status, body) = t.send_text(TO, Some(&rx.url("/status"))).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 201);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert_eq!(body["status"], "queued", "the reply shows the message as it was stored");
    let sid = sid_of(&body);
    assert!(!rx.for_sid(&sid).is_empty(), "callbacks started before the reply");

    t.emu.set_behaviour(TO, Behaviour { latency_ms: Some(0), ..Behaviour::default() });
    let started = Instant::now();
    assert_eq!(t.send_text(TO, None).await.0, 201);
    assert!(started.elapsed() < Duration::from_millis(250), "the per-recipient override wins");
}
