//! The gateway's integration tests: one binary, one module per area, every test against the real
//! application (and, where the test says so, the real binary as a child process).
//!
//! `fault::` is ignored by default: it restarts the machine's PostgreSQL and Redis, so
//! `scripts/test` runs it alone, after everything else.

mod api;
mod batches;
mod cancel;
mod cli;
mod contract;
mod crash;
mod dashboard;
mod dead_letter;
mod docs;
mod events;
mod expiry;
mod fault;
mod fuzz_webhooks;
mod helpers;
mod lifecycle;
mod limits;
mod metrics;
mod openapi;
mod pacing;
mod policy;
mod poll;
mod redis_cluster;
mod redis_queue;
mod resend;
mod secrets;
mod security;
mod send_batch;
mod senders;
mod shared_state;
mod support;
mod throttling;
mod transport_backends;
mod unavailable;
mod webhooks;
mod window;
