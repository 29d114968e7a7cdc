//! The gateway as a library: [`Gateway`] is what the HTTP handlers call, and what an application
//! that embeds the gateway calls directly (send, look up, receive). Its error type is
//! [`GatewayError`].

pub mod dispatch;
mod error;
pub mod events;
mod gateway;
mod inbound;

pub use dispatch::Dispatcher;
pub use error::{Dependency, GatewayError};
pub use events::EventDetail;
pub use gateway::{DeliveryStatus, Gateway, Health, InboundReply, Lookup, PROBE_TIMEOUT, SendMode, SenderReport};
pub use inbound::InboundHandler;
