//! The OpenAPI document: served without auth, lists every route, and describes what the API really
//! answers (real answers are checked against the document's schemas, so neither can drift
//! silently).

use serde_json::{Value, json};
use whatsapp_gateway::domain::MessageStatus;

use crate::helpers::TestApp;

const PROBLEM: &str = "application/problem+json";

/// A GET with the token, as raw JSON: what is checked here is the JSON itself.
async fn raw(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn document(app: &TestApp) -> Value {
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    response.json().await.unwrap()
}

/// Follows a `$ref` to `#/components/schemas/…`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling $ref {reference}");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The properties and required names of an object schema, merging `allOf` parts (flattened structs).
fn object_parts(doc: &Value, schema: &Value) -> (serde_json::Map<String, Value>, Vec<String>) {
    let schema = resolve(doc, schema);
    let mut properties = schema["properties"].as_object().cloned().unwrap_or_default();
    let mut required: Vec<String> = schema["required"].as_array().into_iter().flatten().map(|r| r.as_str().unwrap().to_owned()).collect();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = object_parts(doc, part);
        properties.extend(p);
        required.extend(r);
    }
    (properties, required)
}

fn type_matches(value: &Value, ty: &str) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown schema type {other}"),
    }
}

/// Checks a real value against a schema of the document: types, enums, every object key declared
/// (and every required one present), recursively. Returns the problems found, each with its path.
fn check(doc: &Value, value: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["oneOf"].as_array().or_else(|| schema["anyOf"].as_array()) {
        let fits = options.iter().any(|option| {
            let mut inner = Vec::new();
            check(doc, value, option, path, &mut inner);
            inner.is_empty()
        });
        if !fits {
            problems.push(format!("{path}: {value} fits none of {}", Value::Array(options.clone())));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(value, t)) {
        problems.push(format!("{path}: {value} is not of type {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(map) => {
            let (properties, required) = object_parts(doc, schema);
            if properties.is_empty() && !schema["additionalProperties"].is_object() {
                return; // a free-form object (`metadata`)
            }
            let additional = &schema["additionalProperties"];
            for name in &required {
                if !map.contains_key(name) {
                    problems.push(format!("{path}: required field `{name}` is missing from the real answer"));
                }
            }
            for (key, field) in map {
                let field_path = format!("{path}.{key}");
                match properties.get(key) {
                    Some(field_schema) => check(doc, field, field_schema, &field_path, problems),
                    None if additional.is_object() => check(doc, field, additional, &field_path, problems),
                    None => problems.push(format!("{path}: field `{key}` is not declared in the schema")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(doc, item, item_schema, &format!("{path}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

/// The schema a path declares for one status's JSON (or problem) answer.
fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: &str, media_type: &str) -> &'a Value {
    let schema = &doc["paths"][path][method]["responses"][status]["content"][media_type]["schema"];
    assert!(!schema.is_null(), "{method} {path} declares no {media_type} schema for {status}");
    schema
}

fn assert_conforms(doc: &Value, value: &Value, schema: &Value, what: &str) {
    let mut problems = Vec::new();
    check(doc, value, schema, what, &mut problems);
    assert!(problems.is_empty(), "the real answer of {what} does not match the document:\n{}\nanswer: {value:#}", problems.join("\n"));
}

#[tokio::test]
async fn the_document_is_served_without_auth_and_lists_every_route() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "WhatsApp Gateway");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(!doc["info"]["description"].as_str().unwrap_or_default().is_empty());

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!((schemes["bearer"]["type"].as_str(), schemes["bearer"]["scheme"].as_str()), (Some("http"), Some("bearer")));
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(
        (schemes["twilio_signature"]["type"].as_str(), schemes["twilio_signature"]["in"].as_str()),
        (Some("apiKey"), Some("header"))
    );
    assert_eq!(schemes["twilio_signature"]["name"], "X-Twilio-Signature");

    let routes = [
        ("post", "/api/v1/whatsapp/send", Some("bearer")),
        ("post", "/api/v1/whatsapp/send/batch", Some("bearer")),
        ("get", "/api/v1/whatsapp/delivery-status", Some("bearer")),
        ("get", "/api/v1/whatsapp/delivery-metrics", Some("bearer")),
        ("get", "/api/v1/whatsapp/messages", Some("bearer")),
        ("get", "/api/v1/whatsapp/messages/{id}", Some("bearer")),
        ("post", "/api/v1/whatsapp/messages/{id}/retry", Some("bearer")),
        ("post", "/api/v1/whatsapp/messages/{id}/cancel", Some("bearer")),
        ("post", "/api/v1/whatsapp/messages/{id}/typing", Some("bearer")),
        ("get", "/api/v1/events", Some("bearer")),
        ("get", "/api/v1/events/{event_id}", Some("bearer")),
        ("post", "/api/v1/events/{event_id}/redrive", Some("bearer")),
        ("get", "/api/v1/events/endpoints/{endpoint_id}/secret", Some("bearer")),
        ("post", "/api/v1/events/endpoints/{endpoint_id}/rotate-secret", Some("bearer")),
        ("post", "/api/v1/events/endpoints/{endpoint_id}/redrive", Some("bearer")),
        ("get", "/api/v1/events/endpoints/{endpoint_id}/attempts", Some("bearer")),
        ("get post", "/api/v1/events/endpoints", Some("bearer")),
        ("get patch", "/api/v1/events/endpoints/{endpoint_id}", Some("bearer")),
        ("post", "/api/v1/whatsapp/messages/retry", Some("bearer")),
        ("get", "/api/v1/whatsapp/phones/{phone}/performance", Some("bearer")),
        ("get", "/api/v1/whatsapp/senders", Some("bearer")),
        ("post", "/api/v1/whatsapp/status", Some("twilio_signature")),
        ("post", "/api/v1/whatsapp/webhook", Some("twilio_signature")),
        ("get", "/healthz", None),
        ("get", "/readyz", None),
        ("get", "/metrics", None),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), routes.iter().map(|r| r.1).collect::<std::collections::BTreeSet<_>>().len(), "{:?}", paths.keys());
    for (listed, path, scheme) in routes {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} is missing"));
        let mut methods: Vec<&String> = item.as_object().unwrap().keys().filter(|k| *k != "parameters").collect();
        methods.sort();
        assert_eq!(methods, listed.split(' ').collect::<Vec<_>>(), "{path}");
        for method in listed.split(' ') {
            let operation = &item[method];
            let security: Vec<&str> = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s.as_object().unwrap().keys())
                .map(String::as_str)
                .collect();
            assert_eq!(security, scheme.into_iter().collect::<Vec<_>>(), "{method} {path}");
            let answers = &operation["responses"];
            assert!(["200", "201", "202"].iter().any(|code| answers[code].is_object()), "{method} {path}");
        }
    }

    // The send request: free-form or template (see `contract.rs`), every field in one of them,
    // each documented; `mode` as an enum, and both idempotency headers.
    let send = &doc["paths"]["/api/v1/whatsapp/send"]["post"];
    let request = resolve(&doc, &send["requestBody"]["content"]["application/json"]["schema"]);
    let branches = request["oneOf"].as_array().expect("the send request is oneOf free-form / template");
    assert_eq!(branches.len(), 2);
    let mut names = std::collections::BTreeSet::new();
    let mut requirements = Vec::new();
    let mut properties = serde_json::Map::new();
    for branch in branches {
        let (branch_properties, required) = object_parts(&doc, branch);
        names.extend(branch_properties.keys().cloned());
        requirements.push(required);
        for (name, property) in &branch_properties {
            // An optional reference carries its description inside its `oneOf`.
            let described = std::iter::once(property)
                .chain(property["oneOf"].as_array().into_iter().flatten())
                .any(|p| p["description"].as_str().is_some_and(|d| !d.is_empty()));
            assert!(described, "`{name}` is not documented: {property}");
        }
        properties = branch_properties;
    }
    let expected = [
        "to",
        "from",
        "body",
        "media_urls",
        "content_sid",
        "content_variables",
        "priority",
        "send_at",
        "reference",
        "metadata",
        "mode",
        "validity_s",
        "force",
        "fallback",
    ];
    assert_eq!(names, expected.iter().map(|n| (*n).to_owned()).collect());
    assert_eq!(requirements, [vec!["to".to_owned()], vec!["to".to_owned(), "content_sid".to_owned()]]);
    let mut modes = Vec::new();
    check(&doc, &json!("queue"), &properties["mode"], "mode", &mut modes);
    check(&doc, &json!("immediate"), &properties["mode"], "mode", &mut modes);
    assert!(modes.is_empty(), "{modes:?}");
    check(&doc, &json!("later"), &properties["mode"], "mode", &mut modes);
    assert_eq!(modes.len(), 1, "`mode` must be an enum: {}", properties["mode"]);
    let headers: Vec<&str> =
        send["parameters"].as_array().unwrap().iter().filter(|p| p["in"] == "header").map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(headers, ["Idempotency-Key", "X-Idempotency-Key"]);
    for status in ["201", "202"] {
        assert_eq!(
            response_schema(&doc, "/api/v1/whatsapp/send", "post", status, "application/json")["$ref"],
            "#/components/schemas/MessageResource"
        );
    }
    for status in ["400", "401", "409", "413", "415", "422", "429"] {
        assert_eq!(response_schema(&doc, "/api/v1/whatsapp/send", "post", status, PROBLEM)["$ref"], "#/components/schemas/ProblemDetails");
    }

    // Query and path parameters.
    let parameters = |path: &str| -> Vec<(String, String)> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["in"].as_str().unwrap().to_owned()))
            .collect()
    };
    let query = |names: &[&str]| names.iter().map(|n| ((*n).to_owned(), "query".to_owned())).collect::<Vec<_>>();
    assert_eq!(parameters("/api/v1/whatsapp/delivery-status"), query(&["lookup"]));
    assert_eq!(parameters("/api/v1/whatsapp/delivery-metrics"), query(&["from", "to", "granularity", "to_phone"]));
    assert_eq!(
        parameters("/api/v1/whatsapp/messages"),
        query(&["status", "direction", "phone", "from", "to", "reference", "limit", "cursor"])
    );
    assert_eq!(parameters("/api/v1/whatsapp/messages/{id}"), [("id".to_owned(), "path".to_owned())]);
    assert_eq!(parameters("/api/v1/whatsapp/phones/{phone}/performance"), [("phone".to_owned(), "path".to_owned())]);

    // The webhooks take forms and answer TwiML; the metrics are text.
    let status_form = &doc["paths"]["/api/v1/whatsapp/status"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"];
    let (form, _) = object_parts(&doc, &status_form["schema"]);
    for name in ["MessageSid", "MessageStatus", "ErrorCode"] {
        assert!(form.contains_key(name), "{name} is not in the status callback form");
    }
    let inbound = &doc["paths"]["/api/v1/whatsapp/webhook"]["post"];
    assert!(inbound["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert!(inbound["responses"]["200"]["content"]["text/xml"].is_object());
    for path in ["/api/v1/whatsapp/status", "/api/v1/whatsapp/webhook"] {
        assert_eq!(response_schema(&doc, path, "post", "403", PROBLEM)["$ref"], "#/components/schemas/ProblemDetails");
    }
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object());

    // The document's rendering (the page and its renderer: see `docs.rs`) reads this document.
    let page = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("spec-url=\"openapi.json\""));
    app.finish().await;
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;

    // A message that goes all the way to `read`, with every optional field set…
    app.open_window("+14155550123");
    let request = json!({
        "to": "whatsapp:+14155550123", "body": "Your order is on its way", "priority": 3, "reference": "order-42",
        "metadata": {"order": 42}, "mode": "queue"
    });
    let response = app.send(request).await;
    assert_eq!(response.status(), 202);
    let sent: Value = response.json().await.unwrap();
    assert_conforms(&doc, &sent, response_schema(&doc, "/api/v1/whatsapp/send", "post", "202", "application/json"), "POST /send (202)");
    let id = sent["id"].as_str().unwrap().to_owned();
    // …and one that fails (free-form outside the 24-hour window: 63016), so that errors show up.
    let failing = app.send_ok(json!({"to": "+14155550199", "body": "hello"})).await.id;
    app.wait_for_status(&id, MessageStatus::Read).await;
    app.wait_for(failing, |s| s == MessageStatus::Undelivered || s == MessageStatus::Failed).await;
    app.drain().await;

    let checks = [
        (format!("/api/v1/whatsapp/delivery-status?id={id}"), "/api/v1/whatsapp/delivery-status"),
        (format!("/api/v1/whatsapp/delivery-status?id={failing}"), "/api/v1/whatsapp/delivery-status"),
        ("/api/v1/whatsapp/messages?limit=1".to_owned(), "/api/v1/whatsapp/messages"),
        ("/api/v1/whatsapp/messages".to_owned(), "/api/v1/whatsapp/messages"),
        (format!("/api/v1/whatsapp/messages/{id}"), "/api/v1/whatsapp/messages/{id}"),
        ("/api/v1/whatsapp/delivery-metrics".to_owned(), "/api/v1/whatsapp/delivery-metrics"),
        ("/api/v1/whatsapp/delivery-metrics?granularity=day&to_phone=%2B14155550199".to_owned(), "/api/v1/whatsapp/delivery-metrics"),
        ("/api/v1/whatsapp/phones/+14155550123/performance".to_owned(), "/api/v1/whatsapp/phones/{phone}/performance"),
        ("/api/v1/whatsapp/phones/+14155550199/performance".to_owned(), "/api/v1/whatsapp/phones/{phone}/performance"),
    ];
    for (url, path) in checks {
        let (status, body) = raw(&app, &url).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert_conforms(&doc, &body, response_schema(&doc, path, "get", "200", "application/json"), &format!("GET {url}"));
    }

    // The answers really exercised the nested and optional parts.
    let delivery = app.delivery_status(&id).await;
    assert!(!delivery.history.is_empty() && !delivery.send_attempts.is_empty());
    assert!(app.messages("?limit=1").await.next_cursor.is_some());
    let metrics = app.metrics("").await;
    assert!(!metrics.buckets.is_empty() && !metrics.totals.error_breakdown.is_empty());
    let performance: whatsapp_gateway::http::dto::metrics::PhonePerformanceView =
        app.get_ok("/api/v1/whatsapp/phones/+14155550199/performance").await;
    assert!(!performance.recent_errors.is_empty(), "{performance:?}");

    // Problems.
    let response = app.send(json!({"to": "+1415555", "body": "hi"})).await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_conforms(&doc, &problem, response_schema(&doc, "/api/v1/whatsapp/send", "post", "422", PROBLEM), "POST /send (422)");
    let (status, problem) = raw(&app, "/api/v1/whatsapp/messages/00000000-0000-7000-8000-000000000000").await;
    assert_eq!(status, 404);
    assert_conforms(
        &doc,
        &problem,
        response_schema(&doc, "/api/v1/whatsapp/messages/{id}", "get", "404", PROBLEM),
        "GET /messages/{id} (404)",
    );
    let response = app.http.get(app.url("/api/v1/whatsapp/messages")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let problem: Value = response.json().await.unwrap();
    assert_conforms(&doc, &problem, response_schema(&doc, "/api/v1/whatsapp/messages", "get", "401", PROBLEM), "GET /messages (401)");

    // The operational endpoints.
    for path in ["/healthz", "/readyz"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_conforms(&doc, &body, response_schema(&doc, path, "get", "200", "application/json"), &format!("GET {path}"));
    }

    // And the schemas are not vacuous: a field the code does not send is caught.
    let mut problems = Vec::new();
    let mut altered = serde_json::to_value(&delivery).unwrap();
    altered["colour"] = json!("red");
    check(&doc, &altered, response_schema(&doc, "/api/v1/whatsapp/delivery-status", "get", "200", "application/json"), "x", &mut problems);
    assert_eq!(problems, ["x: field `colour` is not declared in the schema"]);
    app.finish().await;
}
