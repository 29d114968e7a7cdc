//! The API keeps its own contract: whatever the framework refuses is a problem detail naming the
//! field, and the rules the document states (`http/contract.rs`) are the ones the validators apply.
//! `tests/python/test_openapi_contract.py` fuzzes the whole document against the real binary.

use serde_json::{Value, json};
use whatsapp_gateway::domain::phone::{E164_PATTERN, RECEIVED_PATTERN};

use crate::helpers::{TestApp, field_errors, problem, text_message};

const PROBLEM: &str = "application/problem+json";

async fn document(app: &TestApp) -> Value {
    app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap()
}

fn parameter<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    let parameters = doc["paths"][path]["get"]["parameters"].as_array().unwrap_or_else(|| panic!("{path} has no parameters"));
    parameters.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path} has no parameter {name}"))
}

/// The problem of a response, asserting its status, content type and the one field it names.
async fn field_problem(response: reqwest::Response, status: u16, field: &str) -> String {
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, PROBLEM);
    let (got, body) = problem(response).await;
    assert_eq!(got, status, "{body:?}");
    let errors = field_errors(&body);
    assert_eq!(errors.len(), 1, "{body:?}");
    assert_eq!(errors[0].0, field, "{body:?}");
    errors[0].1.clone()
}

#[tokio::test]
async fn what_the_framework_refuses_is_a_problem_naming_the_field() {
    let app = TestApp::spawn().await;
    let reason = field_problem(app.get("/api/v1/whatsapp/messages?limit=abc").await, 422, "limit").await;
    assert!(reason.contains("\"abc\""), "{reason}");
    let reason = field_problem(app.get("/api/v1/whatsapp/delivery-status?message_sid=a&message_sid=b").await, 422, "message_sid").await;
    assert_eq!(reason, "is given more than once");
    field_problem(app.get("/api/v1/whatsapp/messages?status=pending&status=sent").await, 422, "status").await;
    field_problem(app.get("/api/v1/whatsapp/messages/%FF%FE").await, 422, "id").await;
    // An integral number is an integer, in a query string as in JSON.
    assert_eq!(app.get("/api/v1/whatsapp/messages?limit=5.0").await.status(), 200);
    field_problem(app.get("/api/v1/whatsapp/messages?limit=5.5").await, 422, "limit").await;
    let sent = app.send(json!({"to": "+14155550100", "body": "hi", "priority": 3.0})).await;
    assert_eq!(sent.status(), 202);
    field_problem(app.send(json!({"to": "+14155550100", "body": "hi", "priority": "3"})).await, 422, "priority").await;

    // No such route, and a method the route does not serve.
    let response = app.get("/api/v1/whatsapp/nothing-here").await;
    assert_eq!((response.status().as_u16(), response.headers()["content-type"].to_str().unwrap()), (404, PROBLEM));
    let (_, body) = problem(response).await;
    assert!(body.detail.contains("/api/v1/whatsapp/nothing-here"), "{body:?}");
    let response = app.http.delete(app.url("/api/v1/whatsapp/send")).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(response.headers()["content-type"], PROBLEM);
    let (_, body) = problem(response).await;
    assert_eq!(body.kind, "https://whatsapp-gateway.dev/problems/method-not-allowed");
    app.finish().await;
}

#[tokio::test]
async fn the_document_states_the_rules_the_validators_apply() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;

    // Free-form or template, never both: the document's oneOf, and the validator.
    let request = &doc["components"]["schemas"]["SendMessageRequest"];
    let titles: Vec<&str> = request["oneOf"].as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Free-form message", "Template message"]);
    assert_eq!(request["oneOf"][1]["properties"]["body"]["type"], "null");
    assert_eq!(request["oneOf"][0]["properties"]["content_sid"]["type"], "null");
    let both = json!({"to": "+14155550100", "body": "hi", "content_sid": format!("HX{}", "0".repeat(32))});
    field_problem(app.send(both).await, 422, "content_sid").await;

    // Phone numbers: the exact syntax, everywhere the API reads one.
    assert_eq!(request["oneOf"][0]["properties"]["to"]["pattern"], E164_PATTERN);
    assert_eq!(parameter(&doc, "/api/v1/whatsapp/messages", "phone")["schema"]["pattern"], E164_PATTERN);
    assert_eq!(parameter(&doc, "/api/v1/whatsapp/delivery-metrics", "to_phone")["schema"]["pattern"], E164_PATTERN);
    assert_eq!(parameter(&doc, "/api/v1/whatsapp/phones/{phone}/performance", "phone")["schema"]["format"], "phone-number");
    let form = &doc["components"]["schemas"]["IncomingMessageForm"];
    assert_eq!(form["properties"]["From"]["pattern"], RECEIVED_PATTERN);
    assert_eq!(form["required"], json!(["MessageSid", "From", "To"]));
    for spaced in ["+1 415 555 0100", " +14155550100", "whatsapp: +14155550100"] {
        field_problem(app.send(json!({"to": spaced, "body": "hi"})).await, 422, "to").await;
        field_problem(app.get(&format!("/api/v1/whatsapp/messages?phone={}", urlencoding(spaced))).await, 422, "phone").await;
    }
    assert_eq!(app.get("/api/v1/whatsapp/messages?phone=whatsapp%3A%2B14155550100").await.status(), 200);

    // A lookup needs `id` or `message_sid`; both are checked when both are given.
    let lookup = parameter(&doc, "/api/v1/whatsapp/delivery-status", "lookup");
    assert_eq!((lookup["required"].clone(), lookup["explode"].clone()), (json!(true), json!(true)));
    assert_eq!(lookup["schema"]["anyOf"], json!([{"required": ["id"]}, {"required": ["message_sid"]}]));
    field_problem(app.get("/api/v1/whatsapp/delivery-status").await, 422, "id").await;
    let sent = app.send_ok(text_message("+14155550100")).await;
    let both = format!("/api/v1/whatsapp/delivery-status?id={}&message_sid=SM1", sent.id);
    field_problem(app.get(&both).await, 422, "message_sid").await;
    field_problem(app.get(&format!("/api/v1/whatsapp/messages/{}", sent.id.to_string().replace('-', ""))).await, 422, "id").await;

    // A cursor of the documented shape is a position; anything else is refused.
    assert!(parameter(&doc, "/api/v1/whatsapp/messages", "cursor")["schema"]["pattern"].is_string());
    app.send_ok(text_message("+14155550101")).await;
    let page = app.messages("?limit=1").await;
    let cursor = page.next_cursor.expect("two messages, one per page");
    let (at, id) = cursor.split_once('_').expect("`<created ms>_<id>`");
    assert!(at.parse::<i64>().is_ok() && id.len() == 36, "{cursor}");
    assert_eq!(app.messages(&format!("?limit=1&cursor={cursor}")).await.messages.len(), 1);
    assert!(app.messages("?cursor=0_00000000-0000-0000-0000-000000000000").await.messages.is_empty());
    field_problem(app.get("/api/v1/whatsapp/messages?cursor=bm90LWEtY3Vyc29y").await, 422, "cursor").await;

    // `[from, to)` with from at or after to is an empty range, not an error; no bucket cap.
    for range in ["from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"] {
        let report = app.metrics(&format!("?{range}")).await;
        assert_eq!((report.totals.total, report.buckets.len()), (0, 0), "{range}");
    }
    app.drain().await;
    let all_time = app.metrics("?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z").await;
    let today = app.metrics("").await;
    assert!(today.totals.total >= 2, "{today:?}");
    assert_eq!((all_time.totals.total, all_time.buckets.len()), (today.totals.total, today.buckets.len()));

    // Every operation behind the token can answer 503 with `Retry-After`.
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some())) {
                assert!(operation["responses"]["503"]["headers"]["Retry-After"].is_object(), "{method} {path} documents no 503");
            }
        }
    }
    app.finish().await;
}

fn urlencoding(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
