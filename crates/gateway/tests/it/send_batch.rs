//! `POST /api/v1/whatsapp/send/batch`: one result per item, bad items failing alone, keys per
//! item, each item counted against the send limit.

use serde_json::{Value, json};
use whatsapp_gateway::domain::MessageStatus;

use crate::helpers::{JWT_SECRET, TestApp, TestOptions, field_errors, problem};

const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
const LATER: &str = "2099-01-01T00:00:00Z";

async fn batch(app: &TestApp, token: &str, messages: Value) -> reqwest::Response {
    app.http.post(app.url("/api/v1/whatsapp/send/batch")).bearer_auth(token).json(&json!({ "messages": messages })).send().await.unwrap()
}

async fn batch_ok(app: &TestApp, messages: Value) -> Value {
    let response = batch(app, &app.token, messages).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Each result's index, status and (for a refusal) problem type slug and fields.
fn outcomes(answer: &Value) -> Vec<(u64, u64, String)> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let what = match &r["problem"] {
                Value::Null => r["message"]["status"].as_str().unwrap().to_owned(),
                p => {
                    let slug = p["type"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
                    let fields: Vec<&str> =
                        p["errors"].as_array().map(|e| e.iter().map(|f| f["field"].as_str().unwrap()).collect()).unwrap_or_default();
                    if fields.is_empty() { slug } else { format!("{slug}:{}", fields.join(",")) }
                }
            };
            (r["index"].as_u64().unwrap(), r["status"].as_u64().unwrap(), what)
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_messages_in_one_request_with_bad_ones_failing_alone() {
    let app = TestApp::spawn().await;
    let mut messages = Vec::new();
    let mut expected = Vec::new();
    for n in 0..1000u64 {
        let to = format!("+1415555{:04}", n);
        let (item, outcome) = match n % 100 {
            // Due now: really sent.
            0 => (json!({"to": to, "content_sid": TEMPLATE, "reference": "batch-1000"}), (202, "pending")),
            17 => (json!({"to": "+1415555", "content_sid": TEMPLATE}), (422, "validation:to")),
            33 => (json!({"to": to, "send_at": LATER}), (422, "validation:body")),
            51 => (json!({"to": to, "content_sid": TEMPLATE, "mode": "immediate"}), (422, "validation:mode")),
            77 => (json!({"to": to, "content_sid": TEMPLATE, "idempotency_key": 42}), (422, "validation:idempotency_key")),
            _ => (json!({"to": to, "content_sid": TEMPLATE, "send_at": LATER, "reference": "batch-1000"}), (202, "pending")),
        };
        messages.push(item);
        expected.push((n, outcome.0, outcome.1.to_owned()));
    }
    let answer = batch_ok(&app, Value::Array(messages)).await;
    assert_eq!(outcomes(&answer), expected, "one result per item, in order, each bad item refused for its own field");
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(960), Some(40)));

    let mut stored = 0;
    let mut cursor = String::new();
    loop {
        let page = app.messages(&format!("?reference=batch-1000&limit=100{cursor}")).await;
        stored += page.messages.len();
        match page.next_cursor {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(stored, 960, "every accepted item, and nothing else, is stored");
    for result in answer["results"].as_array().unwrap().iter().filter(|r| r["index"].as_u64().unwrap() % 100 == 0) {
        app.wait_for_status(result["message"]["id"].as_str().unwrap(), MessageStatus::Read).await;
    }
    let index_0_to = "+14155550000";
    assert_eq!(app.emulator.counters().created_to(index_0_to), 1, "sent once");
    app.finish().await;
}

#[tokio::test]
async fn item_keys_replay_their_first_answer_and_refuse_other_content() {
    let app = TestApp::spawn().await;
    let items = json!([
        {"to": "+14155550301", "content_sid": TEMPLATE, "idempotency_key": "order-1"},
        {"to": "+14155550302", "content_sid": TEMPLATE, "idempotency_key": "order-2"},
        {"to": "+14155550303", "content_sid": TEMPLATE},
    ]);
    let first = batch_ok(&app, items.clone()).await;
    let ids: Vec<&str> = first["results"].as_array().unwrap().iter().map(|r| r["message"]["id"].as_str().unwrap()).collect();
    assert!(first["results"].as_array().unwrap().iter().all(|r| r.get("replayed").is_none()));

    let again = batch_ok(&app, items).await;
    let results = again["results"].as_array().unwrap();
    assert_eq!((results[0]["replayed"].as_bool(), results[0]["message"]["id"].as_str()), (Some(true), Some(ids[0])));
    assert_eq!((results[1]["replayed"].as_bool(), results[1]["message"]["id"].as_str()), (Some(true), Some(ids[1])));
    assert_ne!(results[2]["message"]["id"].as_str(), Some(ids[2]), "an item without a key is a new message");

    let changed = batch_ok(&app, json!([{"to": "+14155550399", "content_sid": TEMPLATE, "idempotency_key": "order-1"}])).await;
    assert_eq!(outcomes(&changed), [(0, 422, "validation:idempotency_key".to_owned())], "same key, other content");

    for id in &ids {
        app.wait_for_status(id, MessageStatus::Read).await;
    }
    app.drain().await;
    let counters = app.emulator.counters();
    assert_eq!((counters.created_to("+14155550301"), counters.created_to("+14155550302")), (1, 1), "nothing sent twice");
    assert_eq!(counters.created_to("+14155550303"), 2, "the keyless item was sent again, as asked");
    assert_eq!(counters.created_to("+14155550399"), 0);
    app.finish().await;
}

#[tokio::test]
async fn each_item_counts_against_the_send_limit_and_the_ones_over_it_are_told_when_to_retry() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("RATE_LIMIT_SEND_PER_MIN", "5".into())], ..Default::default() }).await;
    let items: Vec<Value> = (0..8).map(|n| json!({"to": format!("+141555504{n:02}"), "content_sid": TEMPLATE, "send_at": LATER})).collect();
    let response = batch(&app, &app.token, Value::Array(items)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["ratelimit-limit"], "5", "the answer tells where the send limit stands");
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    let answer: Value = response.json().await.unwrap();
    let statuses: Vec<u64> = outcomes(&answer).into_iter().map(|(_, status, _)| status).collect();
    assert_eq!(statuses, [202, 202, 202, 202, 202, 429, 429, 429]);
    let detail = answer["results"][7]["problem"]["detail"].as_str().unwrap();
    assert!(detail.contains("5 messages per minute") && detail.contains("retry this item in"), "{detail}");

    let single = app.send(json!({"to": "+14155550499", "content_sid": TEMPLATE})).await;
    assert_eq!(single.status(), 429, "a single send shares the limit the batch used up");
    app.finish().await;
}

#[tokio::test]
async fn a_batch_that_is_not_a_list_of_one_to_1000_objects_is_refused_whole() {
    let app = TestApp::spawn().await;
    let (status, empty) = problem(batch(&app, &app.token, json!([])).await).await;
    assert_eq!((status, field_errors(&empty)[0].0.as_str()), (422, "messages"));
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"to": "+14155550500", "content_sid": TEMPLATE})).collect();
    let (status, over) = problem(batch(&app, &app.token, Value::Array(too_many)).await).await;
    assert_eq!(status, 422);
    assert!(over.detail.contains("not 1001"), "{}", over.detail);
    let (status, shape) =
        problem(batch(&app, &app.token, json!([{"to": "+14155550500", "content_sid": TEMPLATE}, "hello", 3])).await).await;
    assert_eq!(status, 422);
    assert_eq!(field_errors(&shape).into_iter().map(|(f, _)| f).collect::<Vec<_>>(), ["messages[1]", "messages[2]"]);
    let (status, _) = problem(
        app.http.post(app.url("/api/v1/whatsapp/send/batch")).bearer_auth(&app.token).json(&json!({"items": []})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 422, "an unknown top-level field");

    let read_only = whatsapp_gateway::security::mint_scoped_token(
        &JWT_SECRET.to_owned().into(),
        "reader",
        600,
        Some(&[whatsapp_gateway::security::Scope::MessagesRead]),
    )
    .unwrap();
    let (status, _) = problem(batch(&app, &read_only, json!([{"to": "+14155550500", "content_sid": TEMPLATE}])).await).await;
    assert_eq!(status, 403);
    assert_eq!(app.messages("?phone=%2B14155550500").await.messages.len(), 0, "nothing stored from a refused batch");
    app.finish().await;
}
