//! Twilio: a thin client for the Messages API and the table that classifies its error codes.
//! Signature checking lives in the `twilio-signature` crate, shared with the emulator.

pub mod client;
pub mod errors;

pub use client::{CreateMessage, SendError, TwilioClient, TwilioMessage};
pub use errors::{ErrorClass, classify_code};
