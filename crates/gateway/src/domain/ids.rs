//! Typed identifiers, so ids of different things cannot be swapped.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The gateway's own id for a message (a UUIDv7, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = "uuid", example = "01970a3e-5b1c-7d2e-8f40-1a2b3c4d5e6f")]
pub struct MessageId(Uuid);

impl MessageId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for MessageId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Twilio message SID: `SM` or `MM` followed by 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageSid(String);

/// The text was not a Twilio message SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a Twilio message SID (SM or MM followed by 32 hex digits): {0:?}")]
pub struct InvalidMessageSid(pub String);

impl MessageSid {
    /// Parses a SID, enforcing its shape.
    pub fn parse(input: &str) -> Result<Self, InvalidMessageSid> {
        let ok =
            input.len() == 34 && (input.starts_with("SM") || input.starts_with("MM")) && input[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok { Ok(Self(input.to_owned())) } else { Err(InvalidMessageSid(input.chars().take(64).collect())) }
    }

    /// The SID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageSid {
    type Error = InvalidMessageSid;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MessageSid> for String {
    fn from(value: MessageSid) -> Self {
        value.0
    }
}

impl fmt::Display for MessageSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_shape_is_enforced() {
        assert!(MessageSid::parse("SMd5cfa9e002d043c18defc777668b08c1").is_ok());
        assert!(MessageSid::parse("MMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_ok());
        assert!(MessageSid::parse("XXd5cfa9e002d043c18defc777668b08c1").is_err());
        assert!(MessageSid::parse("SMd5cfa9e002d043c18defc777668b08c").is_err());
        assert!(MessageSid::parse("SMd5cfa9e002d043c18defc777668b08cz").is_err());
    }

    #[test]
    fn message_ids_sort_by_creation() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
    }
}
