//! What the gateway tells the application: event types, and the set of them an endpoint wants.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Something that happened that the application may want to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// A message moved to another status (every transition, with the previous and new status).
    #[serde(rename = "message.status_changed")]
    MessageStatusChanged,
    /// A user wrote.
    #[serde(rename = "message.received")]
    MessageReceived,
    /// A message ended `failed` or `undelivered`.
    #[serde(rename = "message.failed")]
    MessageFailed,
    /// A message used up its attempts.
    #[serde(rename = "message.dead_lettered")]
    MessageDeadLettered,
    /// A contact sent STOP.
    #[serde(rename = "contact.opted_out")]
    ContactOptedOut,
    /// A contact sent START after a STOP.
    #[serde(rename = "contact.opted_in")]
    ContactOptedIn,
}

impl EventType {
    /// Every type, in the order the docs list them.
    pub const ALL: [Self; 6] = [
        Self::MessageStatusChanged,
        Self::MessageReceived,
        Self::MessageFailed,
        Self::MessageDeadLettered,
        Self::ContactOptedOut,
        Self::ContactOptedIn,
    ];

    /// The type's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageStatusChanged => "message.status_changed",
            Self::MessageReceived => "message.received",
            Self::MessageFailed => "message.failed",
            Self::MessageDeadLettered => "message.dead_lettered",
            Self::ContactOptedOut => "contact.opted_out",
            Self::ContactOptedIn => "contact.opted_in",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "is not an event type: {0:?} (known: message.status_changed, message.received, message.failed, message.dead_lettered, \
     contact.opted_out, contact.opted_in)"
)]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownEventType(s.chars().take(64).collect()))
    }
}

/// A set of event types (what an endpoint subscribes to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventTypes(u8);

impl EventTypes {
    /// Every type.
    pub fn all() -> Self {
        Self::ALL_TYPES
    }

    const ALL_TYPES: Self = Self(0b11_1111);

    /// No type.
    pub fn none() -> Self {
        Self(0)
    }

    /// Whether `t` is in the set.
    pub fn contains(self, t: EventType) -> bool {
        self.0 & t.bit() != 0
    }

    /// The set with `t` added.
    pub fn with(self, t: EventType) -> Self {
        Self(self.0 | t.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types, in [`EventType::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = EventType> {
        EventType::ALL.into_iter().filter(move |t| self.contains(*t))
    }

    /// As stored: the names separated by spaces.
    pub fn to_column(self) -> String {
        self.iter().map(EventType::as_str).collect::<Vec<_>>().join(" ")
    }

    /// From the stored column (unknown names, from a newer version, are skipped).
    pub fn from_column(text: &str) -> Self {
        text.split_whitespace().filter_map(|t| t.parse().ok()).fold(Self::none(), Self::with)
    }
}

impl FromIterator<EventType> for EventTypes {
    fn from_iter<I: IntoIterator<Item = EventType>>(iter: I) -> Self {
        iter.into_iter().fold(Self::none(), Self::with)
    }
}

/// The id of the gateway's own endpoint: its inbound handlers, run in process from the outbox.
pub const HANDLERS_ENDPOINT: &str = "handlers";

/// A new event id: `evt_` and a time-ordered UUID (Standard Webhooks' `webhook-id`, the same on
/// every delivery attempt, so a receiver can drop a repeat).
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_names_and_the_stored_column() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        let set: EventTypes = [EventType::MessageReceived, EventType::ContactOptedIn].into_iter().collect();
        assert_eq!(set.to_column(), "message.received contact.opted_in");
        assert_eq!(EventTypes::from_column(&set.to_column()), set);
        assert_eq!(EventTypes::from_column(&EventTypes::all().to_column()), EventTypes::all());
        assert!(!set.contains(EventType::MessageFailed) && set.contains(EventType::MessageReceived));
        assert!("message.sent".parse::<EventType>().is_err());
        assert_eq!(EventTypes::from_column("message.received future.type"), EventTypes::none().with(EventType::MessageReceived));
    }
}
