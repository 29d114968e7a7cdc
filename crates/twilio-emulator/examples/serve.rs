//! Runs the emulator on its own: `EMULATOR_BIND_ADDR` (default `127.0.0.1:4010`) plus the
//! `EMULATOR_*` variables read by `EmulatorConfig::from_env`.

use std::net::SocketAddr;

use anyhow::Context as _;
use twilio_emulator::EmulatorConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::var("EMULATOR_BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:4010".to_owned());
    let bind: SocketAddr = bind.parse().with_context(|| format!("EMULATOR_BIND_ADDR: not an address: {bind:?}"))?;
    twilio_emulator::run(EmulatorConfig::from_env()?, bind).await
}
