//! Twilio: a thin client for the Messages API. The error-code table is domain knowledge
//! ([`crate::domain::error_codes`]); signature checking lives in the `twilio-signature` crate,
//! shared with the emulator.

pub mod client;

pub use client::{CreateMessage, SendError, TwilioClient, TwilioMessage};
