//! The batched write path: every change to the database goes through one writer per process
//! (group commit). See [`writer`] for batching, [`plan`] for the rules every command follows,
//! and [`postgres`] / [`sqlite`] for how a batch is loaded and written on each backend.

mod attempts;
mod batch;
pub mod command;
mod events;
mod plan;
mod postgres;
mod resends;
pub mod rollups;
pub mod routes;
mod sql;
mod sqlite;
mod writer;

pub(crate) use postgres::PgExecutor;
pub(crate) use sqlite::SqliteExecutor;
pub(crate) use writer::Writer;
