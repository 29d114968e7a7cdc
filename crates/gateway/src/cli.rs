//! The command line: `serve`, `worker`, `migrate`, `emulator`, `token`.
//!
//! The API verbs (`send`, `status`, `messages`, `metrics`, `retry`, `cancel`, `bulk`) talk to a running
//! gateway over HTTP and need none of its configuration: see [`remote`].

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::startup::{Application, RunOptions};
use crate::store::{Store, StoreOptions};

mod api;
mod bulk;
mod cancel;
mod messages;
mod metrics;
mod output;
pub mod remote;
mod retry;
mod send;
mod status;

/// Send WhatsApp messages through Twilio and know what became of every one of them.
#[derive(Debug, Parser)]
#[command(name = "whatsapp-gateway", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The verbs against a running gateway (`send`, `status`, `messages`, `metrics`, `retry`, `cancel`, `bulk`).
    #[command(flatten)]
    Remote(Box<remote::RemoteCommand>),
    /// Run the HTTP API, the webhooks and the workers (the built-in Twilio emulator too when no
    /// Twilio credentials are set).
    Serve {
        /// Show a message going through its whole lifecycle against the emulator, then keep serving.
        #[arg(long)]
        demo: bool,
    },
    /// Run only the workers (no API); scale these out beside `serve`.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the standalone Twilio emulator (EMULATOR_BIND_ADDR, default 127.0.0.1:4010).
    #[cfg(feature = "emulator")]
    Emulator,
    /// Print a bearer token signed with JWT_SECRET (or the development secret).
    Token {
        /// The token's subject: who is calling.
        #[arg(long, default_value = "dev-app")]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// Limit the token to these scopes (space- or comma-separated: messages:send,
        /// messages:read, metrics:read, events:manage, admin); without it the token may do everything.
        #[arg(long, value_parser = parse_scope_list)]
        scope: Option<ScopeList>,
    },
}

/// The scopes given to `token --scope`.
#[derive(Debug, Clone)]
pub struct ScopeList(pub Vec<crate::security::Scope>);

fn parse_scope_list(text: &str) -> Result<ScopeList, String> {
    let scopes = crate::security::parse_scopes(&text.replace(',', " ")).map_err(|e| e.to_string())?;
    if scopes.is_empty() {
        return Err("name at least one scope".into());
    }
    Ok(ScopeList(scopes))
}

/// Runs the CLI and maps any error to a failing exit code with one clear message.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    // Before the configuration is loaded: these need only a URL and a token.
    if let Command::Remote(verb) = command {
        return remote::run(*verb).await;
    }
    #[cfg(feature = "emulator")]
    if let Command::Emulator = command {
        crate::telemetry::init(false);
        let bind: SocketAddr = std::env::var("EMULATOR_BIND_ADDR")
            .unwrap_or_else(|_| "127.0.0.1:4010".into())
            .parse()
            .context("invalid configuration: EMULATOR_BIND_ADDR")?;
        let config = twilio_emulator::EmulatorConfig::from_env()?;
        return twilio_emulator::run(config, bind).await;
    }
    let config = Config::from_env()?;
    crate::telemetry::init(config.log_json);
    match command {
        Command::Serve { demo } => {
            if config.jwt_secret_generated {
                tracing::warn!(
                    "JWT_SECRET is not set: using the development secret in data/jwt-secret (`whatsapp-gateway token` prints a token for it)"
                );
            }
            let app = Application::build(config, RunOptions { api: true, workers: true, ..Default::default() }).await?;
            tracing::info!(address = %app.base_url(), "WhatsApp Gateway listening");
            if demo {
                let demo_app = crate::demo::DemoTarget::from(&app);
                tokio::spawn(async move {
                    if let Err(e) = crate::demo::run(demo_app).await {
                        eprintln!("demo failed: {e:#}");
                    }
                });
            }
            app.run_until_stopped(true).await
        }
        Command::Worker => {
            if config.public_base_url.is_none() {
                anyhow::bail!(
                    "invalid configuration: PUBLIC_BASE_URL: required by `worker`, whose sends must tell Twilio where the API's status callbacks go"
                );
            }
            let app = Application::build(config, RunOptions { api: false, workers: true, ..Default::default() }).await?;
            tracing::info!(address = %app.base_url(), "worker running (health on /healthz, /readyz)");
            app.run_until_stopped(true).await
        }
        Command::Migrate => {
            let store = Store::connect(config.database_url.expose_secret(), &StoreOptions::default()).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token { sub, ttl, scope } => {
            let scopes = scope.as_ref().map(|list| list.0.as_slice());
            println!("{}", crate::security::mint_scoped_token(&config.jwt_secret, &sub, ttl, scopes)?);
            Ok(())
        }
        #[cfg(feature = "emulator")]
        Command::Emulator => unreachable!("handled above"),
        Command::Remote(_) => unreachable!("handled above"),
    }
}
