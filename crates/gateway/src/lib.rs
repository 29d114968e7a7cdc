//! WhatsApp Gateway: send WhatsApp messages through Twilio and know what became of every one.
//!
//! The library owns everything; the `whatsapp-gateway` binary is a thin CLI over it. Start with
//! [`startup::Application`] to run the service, or [`service::Gateway`] to embed it.
//!
//! Where things are: `domain` (types and the status state machine, no I/O), `store` (SQL for
//! SQLite and PostgreSQL), `queue` + `worker` (durable jobs, sending, retries), `twilio` (client
//! and error codes), `http` (the API), `webhooks` (Twilio's callbacks), `config`, `telemetry`.

pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod queue;
pub mod service;
pub mod shared;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod twilio;
pub mod webhooks;
pub mod worker;
