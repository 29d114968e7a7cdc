//! WhatsApp Gateway: send WhatsApp messages through Twilio and know what became of every one.
//!
//! The library owns everything; the `whatsapp-gateway` binary is a thin CLI over it. Start with
//! [`startup::Application`] to run the service, or [`service::Gateway`] to embed it. The layers,
//! top to bottom (a module imports only from below it; `docs/ARCHITECTURE.md` has the whole
//! picture): `cli` (and its HTTP `client`), `demo` → `startup` → `http` → `state` → `service` → `worker` → `queue`,
//! `store`, `shared`, `twilio` → `security`, `config`, `domain`, `telemetry`.

#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod domain;
#[cfg(feature = "emulator")]
mod embedded_emulator;
pub mod http;
pub mod queue;
pub mod security;
pub mod service;
pub mod shared;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod twilio;
pub mod worker;
