//! Domain types and rules. No I/O: everything here is parsed, validated and decided in memory.
//!
//! Handlers turn requests into these types before anything touches the database, so the layers
//! below only ever see values that are already known to be valid ("parse, don't validate").

pub mod health;
pub mod ids;
pub mod message;
pub mod phone;
pub mod priority;
pub mod status;

pub use health::PhoneHealth;
pub use ids::{MessageId, MessageSid};
pub use message::{Content, Direction, NewOutboundMessage};
pub use phone::PhoneNumber;
pub use priority::Priority;
pub use status::{Lifecycle, MessageStatus, StatusEvent};
