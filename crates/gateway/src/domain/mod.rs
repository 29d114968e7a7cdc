//! Domain types and rules. No I/O: everything here is parsed, validated and decided in memory.
//!
//! Handlers turn requests into these types before anything touches the database, so the layers
//! below only ever see values that are already known to be valid ("parse, don't validate").

pub mod attempt;
pub mod clock;
pub mod consent;
pub mod error_codes;
pub mod event;
pub mod granularity;
pub mod health;
pub mod ids;
pub mod inbound;
pub mod message;
pub mod origin;
pub mod phone;
pub mod priority;
pub mod rollup;
pub mod source;
pub mod status;

pub use attempt::{AttemptOutcome, AttemptResult};
pub use clock::{UnixMillis, now_ms, rfc3339_millis};
pub use consent::OptChange;
pub use error_codes::{ErrorClass, classify_code};
pub use event::{EventType, EventTypes, HANDLERS_ENDPOINT, UnknownEventType, new_event_id};
pub use granularity::Granularity;
pub use health::{PhoneHealth, SenderHealth};
pub use ids::{MessageId, MessageSid};
pub use inbound::{Button, InboundDetails, InboundMessage, ListReply, Location, Media, Referral};
pub use message::{
    Content, Direction, Fallback, MAX_VALIDITY_S, NewOutboundMessage, SERVICE_WINDOW_MS, outside_window, rfc3339_seconds, window_open,
};
pub use origin::{Origin, Route, Senders, ServiceSid};
pub use phone::PhoneNumber;
pub use priority::Priority;
pub use source::StatusSource;
pub use status::{Lifecycle, MessageStatus, StatusEvent};
