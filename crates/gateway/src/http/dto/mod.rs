//! Request and response bodies of the JSON API.

pub mod metrics;
pub mod number;
pub mod ops;
pub mod request;
pub mod resource;
pub mod time;

pub use request::{GranularityName, SendMessageRequest, SendModeName};
pub use resource::{AttemptResource, DeliveryStatusView, HistoryEntry, MessagePage, MessageResource, RedriveResult};
pub use time::{parse_rfc3339, rfc3339};
