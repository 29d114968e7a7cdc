//! Reading the input CSV: the header names the columns, each data row becomes one send request
//! with an idempotency key of its own, or a problem found before anything is sent.
//!
//! Columns (header names are case-insensitive, except variable names): `to` (required), `body`,
//! `media_url` (one or more URLs separated by spaces), `content_sid`, template variables either
//! as a `content_variables` JSON object or one column per variable named `var:NAME` or
//! `var.NAME`, and optional `reference`, `send_at`, `priority`, `metadata` (a JSON object). An
//! empty cell is an absent field. Any other column is refused before anything is sent, so that a
//! misspelt column is not silently dropped.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::client::SendRequest;

/// What each column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    To,
    Body,
    MediaUrl,
    ContentSid,
    ContentVariables,
    Variable(String),
    Reference,
    SendAt,
    Priority,
    Metadata,
}

impl Field {
    fn from_header(name: &str) -> Option<Self> {
        let trimmed = name.trim();
        let lower = trimmed.to_ascii_lowercase();
        if let Some(variable) = ["var:", "var."].iter().find_map(|p| lower.starts_with(p).then(|| &trimmed[p.len()..])) {
            return (!variable.is_empty()).then(|| Self::Variable(variable.to_owned()));
        }
        Some(match lower.as_str() {
            "to" => Self::To,
            "body" => Self::Body,
            "media_url" | "media_urls" => Self::MediaUrl,
            "content_sid" => Self::ContentSid,
            "content_variables" => Self::ContentVariables,
            "reference" => Self::Reference,
            "send_at" => Self::SendAt,
            "priority" => Self::Priority,
            "metadata" => Self::Metadata,
            _ => return None,
        })
    }
}

/// The columns of one input file, read from its header.
#[derive(Debug, Clone)]
pub struct Columns {
    fields: Vec<Field>,
}

impl Columns {
    /// Reads the header; refuses unknown and repeated columns and a file that cannot make a
    /// message (no `to`, or none of `body`, `media_url`, `content_sid`).
    pub fn from_header(header: &csv::StringRecord) -> anyhow::Result<Self> {
        let mut fields = Vec::with_capacity(header.len());
        for name in header {
            let Some(field) = Field::from_header(name) else {
                anyhow::bail!(
                    "unknown column {name:?} in the header; the columns are to, body, media_url, content_sid, \
                     content_variables or var:NAME, reference, send_at, priority, metadata"
                );
            };
            if fields.contains(&field) {
                anyhow::bail!("column {name:?} appears twice in the header");
            }
            fields.push(field);
        }
        if !fields.contains(&Field::To) {
            anyhow::bail!("the header has no `to` column");
        }
        if ![Field::Body, Field::MediaUrl, Field::ContentSid].iter().any(|f| fields.contains(f)) {
            anyhow::bail!("the header needs a `body`, `media_url` or `content_sid` column");
        }
        Ok(Self { fields })
    }

    /// The `to` cell of a row as written (for the results file), even when the row is bad.
    pub fn to_cell(&self, record: &csv::ByteRecord) -> String {
        let index = self.fields.iter().position(|f| *f == Field::To);
        index.and_then(|i| record.get(i)).map(|cell| String::from_utf8_lossy(cell).trim().to_owned()).unwrap_or_default()
    }

    /// The send request of one data row, or why it cannot be sent.
    pub fn request(&self, record: &csv::ByteRecord) -> Result<SendRequest, String> {
        if record.len() != self.fields.len() {
            return Err(format!("the row has {} fields; the header has {}", record.len(), self.fields.len()));
        }
        let mut request = SendRequest::default();
        let mut variables = Map::new();
        for (field, cell) in self.fields.iter().zip(record) {
            let Ok(text) = std::str::from_utf8(cell) else {
                return Err(format!("the {} column is not valid UTF-8", field.name()));
            };
            if text.trim().is_empty() {
                continue;
            }
            let value = || text.trim().to_owned();
            match field {
                Field::To => request.to = Some(value()),
                Field::Body => request.body = Some(text.to_owned()),
                Field::MediaUrl => request.media_urls = text.split_whitespace().map(str::to_owned).collect(),
                Field::ContentSid => request.content_sid = Some(value()),
                // Sent as the text it is: the API reads an object given as a string, and names
                // the field when it is not one.
                Field::ContentVariables => request.content_variables = Some(Value::String(value())),
                Field::Variable(name) => {
                    variables.insert(name.clone(), Value::String(text.to_owned()));
                }
                Field::Reference => request.reference = Some(value()),
                Field::SendAt => request.send_at = Some(value()),
                Field::Priority => request.priority = Some(text.trim().parse::<i64>().map_or_else(|_| Value::String(value()), Value::from)),
                Field::Metadata => {
                    request.metadata = Some(serde_json::from_str(text).map_err(|e| format!("the metadata column is not JSON: {e}"))?);
                }
            }
        }
        if !variables.is_empty() {
            if request.content_variables.is_some() {
                return Err("the row has both a content_variables cell and var: cells; give the variables one way".to_owned());
            }
            request.content_variables = Some(Value::Object(variables));
        }
        Ok(request)
    }
}

impl Field {
    fn name(&self) -> String {
        match self {
            Self::To => "to".into(),
            Self::Body => "body".into(),
            Self::MediaUrl => "media_url".into(),
            Self::ContentSid => "content_sid".into(),
            Self::ContentVariables => "content_variables".into(),
            Self::Variable(name) => format!("var:{name}"),
            Self::Reference => "reference".into(),
            Self::SendAt => "send_at".into(),
            Self::Priority => "priority".into(),
            Self::Metadata => "metadata".into(),
        }
    }
}

/// Idempotency keys for the rows of one run: the SHA-256 of the key prefix, the request as sent
/// and how many identical requests came before it in the file. Rows keep their keys when other
/// rows are added, removed or fixed, and when the file is moved; a row whose content changes
/// gets a new key (and is sent), and two identical rows are two messages.
#[derive(Debug)]
pub struct RowKeys {
    prefix: String,
    seen: HashMap<String, u64>,
}

impl RowKeys {
    /// Keys under `prefix` (by default the input file's name).
    pub fn new(prefix: String) -> Self {
        Self { prefix, seen: HashMap::new() }
    }

    /// The key of the next row carrying `request`.
    pub fn key(&mut self, request: &SendRequest) -> String {
        let body = serde_json::to_string(request).unwrap_or_default();
        let content = twilio_signature::hex_sha256(body.as_bytes());
        let occurrence = self.seen.entry(content.clone()).or_insert(0);
        *occurrence += 1;
        let material = format!("{}\n{}\n{content}\n{occurrence}", self.prefix.len(), self.prefix);
        format!("bulk-{}", twilio_signature::hex_sha256(material.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(header: &[&str]) -> anyhow::Result<Columns> {
        Columns::from_header(&csv::StringRecord::from(header.to_vec()))
    }

    #[test]
    fn unknown_repeated_and_missing_columns_are_refused() {
        assert!(columns(&["to", "bodyy"]).unwrap_err().to_string().contains("unknown column \"bodyy\""));
        assert!(columns(&["to", "body", "Body"]).unwrap_err().to_string().contains("appears twice"));
        assert!(columns(&["body"]).unwrap_err().to_string().contains("no `to` column"));
        assert!(columns(&["to", "reference"]).unwrap_err().to_string().contains("`body`, `media_url` or `content_sid`"));
        assert!(columns(&["To", "content_sid", "var:1", "var.Name"]).is_ok());
    }

    #[test]
    fn cells_become_fields_and_empty_cells_are_absent() {
        let c = columns(&["to", "content_sid", "var:1", "var.name", "priority", "media_url"]).unwrap();
        let request = c.request(&csv::ByteRecord::from(vec!["+14155550100", "HX1", "Ada", "", "3", ""])).unwrap();
        assert_eq!(request.to.as_deref(), Some("+14155550100"));
        assert_eq!(request.content_variables, Some(serde_json::json!({"1": "Ada"})));
        assert_eq!(request.priority, Some(Value::from(3)));
        assert!(request.media_urls.is_empty());
        let short = c.request(&csv::ByteRecord::from(vec!["+14155550100"])).unwrap_err();
        assert_eq!(short, "the row has 1 fields; the header has 6");
    }

    #[test]
    fn keys_follow_content_and_occurrence_not_position() {
        let request = |body: &str| SendRequest { to: Some("+14155550100".into()), body: Some(body.into()), ..Default::default() };
        let mut first = RowKeys::new("file.csv".into());
        let (a, b, a_again) = (first.key(&request("a")), first.key(&request("b")), first.key(&request("a")));
        assert_ne!(a, a_again, "two identical rows are two messages");
        let mut reordered = RowKeys::new("file.csv".into());
        assert_eq!((reordered.key(&request("b")), reordered.key(&request("a"))), (b, a.clone()));
        assert_ne!(RowKeys::new("other.csv".into()).key(&request("a")), a);
        assert!(a.len() <= 255 && a.bytes().all(|c| c.is_ascii_graphic()));
    }
}
