//! What the validators enforce that utoipa's derives cannot say, written into the generated
//! document so that a request the document calls valid is one the gateway takes, and the other
//! way round (a generated client, or a contract fuzzer, learns every rule from the document):
//!
//! - a send request is *either* free-form content *or* a template (`oneOf`), each closed;
//! - a delivery-status lookup needs `id` or `message_sid` (one query object, `anyOf` required);
//! - phone numbers carry the exact E.164 pattern the API checks, and the `phone-number` format
//!   (valid in its numbering plan, which no pattern can state);
//! - a sender (`from`) carries the syntax of a number or a Messaging Service SID, and the
//!   `whatsapp-sender` format (one this gateway is configured with, which no pattern can state);
//! - a list cursor has a pattern (any cursor of that shape is a position);
//! - every operation that reads the store can answer 503, and one behind a scope 403.
//!
//! Each rule's tests sit beside the validator it mirrors; `tests/it/openapi.rs` checks the
//! document's shape and `tests/python/test_openapi_contract.py` fuzzes the two against each other.

use serde_json::{Map, Value, json};

use super::messages::CURSOR_PATTERN;
use crate::domain::phone::E164_PATTERN;

/// The document's format for a phone number the numbering plan assigns.
pub const PHONE_FORMAT: &str = "phone-number";

/// A string without control characters.
const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Free-form text: something other than whitespace, and no control characters but newline,
/// carriage return and tab (`check_body` in `dto/request.rs`). Whitespace is spelled out as
/// Rust's `char::is_whitespace` has it (ECMA-262's `\s` differs: it has U+FEFF, lacks U+0085).
const BODY_PATTERN: &str = concat!(
    "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*",
    "[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]",
    "[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
);

/// An absolute http(s) URL without whitespace (`check_media` in `dto/request.rs`; whitespace as
/// Rust has it).
const MEDIA_URL_PATTERN: &str =
    "^[hH][tT][tT][pP][sS]?://[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$";

/// An idempotency key: 1 to 255 visible ASCII characters (`idempotency::key_from`).
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// Applies every refinement.
pub fn refine(document: &mut Value) {
    send_request(document);
    delivery_status_lookup(document);
    phone_parameters(document);
    if let Some(cursor) = parameter(document, "/api/v1/whatsapp/messages", "get", "cursor") {
        cursor["schema"]["pattern"] = json!(CURSOR_PATTERN);
    }
    for name in ["Idempotency-Key", "X-Idempotency-Key"] {
        if let Some(key) = parameter(document, "/api/v1/whatsapp/send", "post", name) {
            key["schema"] = json!({"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN});
        }
    }
    events_contract(document);
    unavailable_answers(document);
}

/// An event endpoint's URL: http(s), a host name or IPv4 address, an optional port, an optional
/// path of visible ASCII; no credentials, no whitespace (`events::endpoint_url`).
pub const ENDPOINT_URL_PATTERN: &str = concat!(
    "^[hH][tT][tT][pP][sS]?://",
    "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    "(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?",
    "([/?#][!-~]*)?$"
);
/// An endpoint id (`ep_…`, or a configured endpoint's name).
pub const ENDPOINT_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// An event id.
pub const EVENT_ID_PATTERN: &str = "^evt_[0-9a-fA-F]{32}$";
/// A hyphenated UUID.
const UUID_PATTERN: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// A Standard Webhooks secret as `WebhookSecret::parse` takes it: `whsec_` and canonical padded
/// base64 of 24 to 64 bytes.
pub const SECRET_PATTERN: &str = concat!(
    "^whsec_(([A-Za-z0-9+/]{4}){8,21}",
    "|([A-Za-z0-9+/]{4}){8,21}[A-Za-z0-9+/][AQgw]==",
    "|([A-Za-z0-9+/]{4}){8,20}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$"
);

/// The event endpoints' and events' parameters and bodies: ids, URLs, secrets, types, ranges.
fn events_contract(document: &mut Value) {
    let types: Vec<&str> = crate::domain::EventType::ALL.iter().map(|t| t.as_str()).collect();
    let endpoint_paths = [
        ("/api/v1/events/endpoints/{endpoint_id}", "get"),
        ("/api/v1/events/endpoints/{endpoint_id}", "patch"),
        ("/api/v1/events/endpoints/{endpoint_id}/secret", "get"),
        ("/api/v1/events/endpoints/{endpoint_id}/rotate-secret", "post"),
        ("/api/v1/events/endpoints/{endpoint_id}/redrive", "post"),
        ("/api/v1/events/endpoints/{endpoint_id}/attempts", "get"),
    ];
    for (path, method) in endpoint_paths {
        if let Some(p) = parameter(document, path, method, "endpoint_id") {
            p["schema"] = json!({"type": "string", "pattern": ENDPOINT_ID_PATTERN});
        }
    }
    for (path, method) in [("/api/v1/events/{event_id}", "get"), ("/api/v1/events/{event_id}/redrive", "post")] {
        if let Some(p) = parameter(document, path, method, "event_id") {
            p["schema"] = json!({"type": "string", "pattern": EVENT_ID_PATTERN});
        }
    }
    let query = [
        ("/api/v1/events", "get", "message_id", json!({"type": ["string", "null"], "pattern": UUID_PATTERN, "format": "uuid"})),
        (
            "/api/v1/events",
            "get",
            "type",
            json!({"type": ["string", "null"], "enum": types.iter().map(|t| json!(t)).chain([Value::Null]).collect::<Vec<_>>()}),
        ),
        ("/api/v1/events", "get", "endpoint_id", json!({"type": ["string", "null"], "pattern": ENDPOINT_ID_PATTERN})),
        ("/api/v1/events", "get", "status", json!({"type": ["string", "null"], "enum": ["pending", "delivered", "failed", null]})),
        ("/api/v1/events", "get", "before", json!({"type": ["string", "null"], "pattern": EVENT_ID_PATTERN})),
        ("/api/v1/events", "get", "limit", json!({"type": ["integer", "null"], "format": "int64", "minimum": 1, "maximum": 500})),
        (
            "/api/v1/events/endpoints/{endpoint_id}/attempts",
            "get",
            "limit",
            json!({"type": ["integer", "null"], "format": "int64", "minimum": 1, "maximum": 1000}),
        ),
        ("/api/v1/events/{event_id}/redrive", "post", "endpoint_id", json!({"type": ["string", "null"], "pattern": ENDPOINT_ID_PATTERN})),
    ];
    for (path, method, name, schema) in query {
        if let Some(p) = parameter(document, path, method, name) {
            p["schema"] = schema;
        }
    }
    let schemas = &mut document["components"]["schemas"];
    let event_types = json!({"type": "array", "minItems": 1, "items": {"type": "string", "enum": types}});
    for (name, required_url) in [("CreateEndpointRequest", true), ("UpdateEndpointRequest", false)] {
        let properties = &mut schemas[name]["properties"];
        properties["url"] = if required_url {
            json!({"type": "string", "pattern": ENDPOINT_URL_PATTERN, "maxLength": 2048, "description": "Where events are posted (`http` or `https`). An address inside the gateway's own network (loopback, private, link-local) is refused unless `EVENTS_ALLOW_PRIVATE_URLS`.", "example": "https://app.example.com/hooks/whatsapp"})
        } else {
            json!({"type": ["string", "null"], "pattern": ENDPOINT_URL_PATTERN, "maxLength": 2048, "description": "A new URL."})
        };
        let mut types_schema = event_types.clone();
        types_schema["type"] = json!(["array", "null"]);
        properties["event_types"] = types_schema;
        properties["description"] = json!({"type": ["string", "null"], "maxLength": 500});
        schemas[name]["additionalProperties"] = json!(false);
    }
    schemas["CreateEndpointRequest"]["properties"]["secret"] = json!({"type": ["string", "null"], "pattern": SECRET_PATTERN});
    schemas["RotateSecretRequest"]["properties"]["secret"] = json!({"type": ["string", "null"], "pattern": SECRET_PATTERN});
    schemas["RotateSecretRequest"]["properties"]["grace_s"] =
        json!({"type": ["integer", "null"], "format": "int64", "minimum": 0, "maximum": 604800});
    schemas["RotateSecretRequest"]["additionalProperties"] = json!(false);
    // Its body is optional: no body rotates to a generated secret with the default grace.
    document["paths"]["/api/v1/events/endpoints/{endpoint_id}/rotate-secret"]["post"]["requestBody"]["required"] = json!(false);
}

/// The document's format for a sender this gateway is configured with.
pub const SENDER_FORMAT: &str = "whatsapp-sender";
/// What a `from` looks like: a number as `to` takes it, or a Messaging Service SID.
pub const SENDER_PATTERN: &str = "^((whatsapp:)?\\+[1-9][0-9]{6,14}|MG[0-9a-fA-F]{32})$";

fn phone_schema(mut schema: Value) -> Value {
    schema["type"] = json!("string");
    schema["pattern"] = json!(E164_PATTERN);
    schema["format"] = json!(PHONE_FORMAT);
    schema
}

/// `SendMessageRequest` as `oneOf` free-form / template, from the derived properties.
fn send_request(document: &mut Value) {
    let schemas = &mut document["components"]["schemas"];
    let derived = schemas["SendMessageRequest"].take();
    let property = |name: &str| derived["properties"][name].clone();
    let mut common = Map::new();
    for name in ["priority", "send_at", "metadata", "mode", "validity_s", "force"] {
        common.insert(name.to_owned(), property(name));
    }
    common.insert("to".to_owned(), phone_schema(property("to")));
    let mut from = property("from");
    from["type"] = json!(["string", "null"]);
    from["pattern"] = json!(SENDER_PATTERN);
    from["format"] = json!(SENDER_FORMAT);
    common.insert("from".to_owned(), from);
    let mut reference = property("reference");
    reference["pattern"] = json!(NO_CONTROL);
    common.insert("reference".to_owned(), reference);

    let mut free_form = common.clone();
    let mut body = property("body");
    body["minLength"] = json!(1);
    body["pattern"] = json!(BODY_PATTERN);
    free_form.insert("body".to_owned(), body);
    let mut media = property("media_urls");
    media["items"] = json!({"type": "string", "maxLength": 2048, "pattern": MEDIA_URL_PATTERN});
    free_form.insert("media_urls".to_owned(), media);
    free_form.insert("content_sid".to_owned(), json!({"type": "null", "description": "Not with free-form content."}));
    free_form.insert("content_variables".to_owned(), json!({"type": "null", "description": "Only with `content_sid`."}));
    free_form.insert("fallback".to_owned(), property("fallback"));
    // Its variables are an object (a string is taken only if it holds one), as a template's are.
    let fallback = &mut schemas["FallbackTemplate"]["properties"];
    fallback["content_variables"]["type"] = json!(["object", "null"]);

    let mut template = common;
    let mut content_sid = property("content_sid");
    content_sid["type"] = json!("string");
    template.insert("content_sid".to_owned(), content_sid);
    let mut variables = property("content_variables");
    variables["type"] = json!(["object", "null"]);
    template.insert("content_variables".to_owned(), variables);
    template.insert("body".to_owned(), json!({"type": "null", "description": "A template carries its own content."}));
    template
        .insert("fallback".to_owned(), json!({"type": "null", "description": "A template may be sent at any time: it needs no fallback."}));
    template.insert(
        "media_urls".to_owned(),
        json!({"type": ["array", "null"], "maxItems": 0, "description": "A template carries its own content."}),
    );

    schemas["SendMessageRequest"] = json!({
        "description": derived["description"],
        "example": derived["example"],
        "oneOf": [
            {
                "title": "Free-form message",
                "description": "Text and/or media (`body`, `media_urls`): delivered only within 24 hours of the user's last message.",
                "type": "object",
                "additionalProperties": false,
                "required": ["to"],
                "properties": free_form,
                "anyOf": [
                    {"required": ["body"], "properties": {"body": {"type": "string"}}},
                    {"required": ["media_urls"], "properties": {"media_urls": {"type": "array", "minItems": 1}}}
                ]
            },
            {
                "title": "Template message",
                "description": "A Content Template (`content_sid`, optionally `content_variables`): may be sent at any time.",
                "type": "object",
                "additionalProperties": false,
                "required": ["to", "content_sid"],
                "properties": template
            }
        ]
    });
}

/// `id` and `message_sid` of `delivery-status` as one exploded query object that needs one of them.
fn delivery_status_lookup(document: &mut Value) {
    let Some(parameters) = document["paths"]["/api/v1/whatsapp/delivery-status"]["get"]["parameters"].as_array_mut() else {
        return;
    };
    let take = |parameters: &mut Vec<Value>, name: &str| {
        let at = parameters.iter().position(|p| p["name"] == name)?;
        Some(parameters.remove(at))
    };
    let (Some(id), Some(sid)) = (take(parameters, "id"), take(parameters, "message_sid")) else { return };
    parameters.push(json!({
        "name": "lookup",
        "in": "query",
        "style": "form",
        "explode": true,
        "required": true,
        "description": "Which message: `id` or `message_sid` (at least one; `id` wins when both are given, and both must be well formed).",
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid", "description": id["description"]},
                "message_sid": {"type": "string", "pattern": sid["schema"]["pattern"], "description": sid["description"]}
            },
            "anyOf": [{"required": ["id"]}, {"required": ["message_sid"]}]
        }
    }));
}

fn parameter<'a>(document: &'a mut Value, path: &str, method: &str, name: &str) -> Option<&'a mut Value> {
    document["paths"][path][method]["parameters"].as_array_mut()?.iter_mut().find(|p| p["name"] == name)
}

/// Every phone number the API reads: the exact syntax, and the format.
fn phone_parameters(document: &mut Value) {
    for (path, method, name) in [
        ("/api/v1/whatsapp/messages", "get", "phone"),
        ("/api/v1/whatsapp/messages/retry", "post", "phone"),
        ("/api/v1/whatsapp/delivery-metrics", "get", "to_phone"),
        ("/api/v1/whatsapp/phones/{phone}/performance", "get", "phone"),
    ] {
        if let Some(parameter) = parameter(document, path, method, name) {
            parameter["schema"] = phone_schema(parameter["schema"].take());
        }
    }
}

/// Every operation behind a bearer token requires a scope (403 without it), and reads or writes the
/// store, which may be down: 503 with `Retry-After`.
fn unavailable_answers(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else { return };
    for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
        let bearer = operation["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        let scopes: Vec<String> = operation["security"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("bearer")?.as_array())
            .flatten()
            .filter_map(|s| Some(format!("`{}`", s.as_str()?)))
            .collect();
        if bearer && !scopes.is_empty() && operation["responses"].get("403").is_none() {
            operation["responses"]["403"] = json!({
                "description": format!("The token's `scope` claim lacks {} (or `admin`); a token without the claim may do everything.", scopes.join(" and ")),
                "headers": {"WWW-Authenticate": {"description": "`Bearer` challenge with `error=\"insufficient_scope\"` and the scope required.", "schema": {"type": "string"}}},
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
            });
        }
        if bearer && operation["responses"].get("503").is_none() {
            operation["responses"]["503"] = json!({
                "description": "A dependency (the database) is unavailable; retry after `Retry-After` seconds.",
                "headers": {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}},
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
            });
        }
    }
}
