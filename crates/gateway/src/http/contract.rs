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
    unavailable_answers(document);
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
