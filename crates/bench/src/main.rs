//! `wg-bench`: drives a running WhatsApp gateway over HTTP, as its users and Twilio would, and
//! prints one JSON object with the figures on stdout (human text goes to stderr).
//!
//! - `load`: concurrent `POST /api/v1/whatsapp/send`, then polls the delivery metrics until every
//!   accepted message is `read` (the gateway's workers, the Twilio emulator and its status
//!   callbacks do the rest).
//! - `ingest`: signed Twilio status callbacks (`sent`, `delivered`, `read`) for messages seeded
//!   beforehand with SIDs `SM{i+1:032x}`, some reordered, some posted twice.
//! - `metrics`: sequential `GET /api/v1/whatsapp/delivery-metrics` requests.
//!
//! It is built to cost little per request, since its CPU shares the machine with what it
//! measures: a single-threaded runtime, one HTTP/1.1 keep-alive client, every body (and every
//! signature) prepared before the clock starts, no per-request logging. Every run is bounded in
//! requests and in time, and it only talks to the URL it is given.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod ingest;
mod load;
mod metrics;

use ingest::ingest;
use load::load;
use metrics::metrics;

/// Load driver for the WhatsApp gateway: prints one JSON object on stdout.
#[derive(Debug, Parser)]
#[command(name = "wg-bench", version, about)]
struct Cli {
    /// What to measure.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Send messages through the API and wait until all of them are `read`.
    Load(LoadArgs),
    /// Post signed status callbacks for seeded messages.
    Ingest(IngestArgs),
    /// Time sequential delivery-metrics queries.
    Metrics(MetricsArgs),
}

/// `wg-bench load`.
#[derive(Debug, Args)]
struct LoadArgs {
    /// The gateway's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// A bearer token the gateway accepts (`whatsapp-gateway token`).
    #[arg(long)]
    token: String,
    /// Messages to send.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Time limit of the whole run (sending and waiting for `read`), in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Receive the gateway's event webhooks on this loopback port (the gateway's `EVENTS_URL`
    /// is `http://127.0.0.1:<port>/events`), answering 204, and count the run done only once the
    /// gateway has no event left to deliver (`GET /api/v1/events?status=pending`).
    #[arg(long)]
    events_port: Option<u16>,
}

/// `wg-bench ingest`.
#[derive(Debug, Args)]
struct IngestArgs {
    /// The gateway's base URL.
    #[arg(long)]
    url: String,
    /// The Twilio auth token the gateway checks signatures with.
    #[arg(long)]
    auth_token: String,
    /// The gateway's PUBLIC_BASE_URL: the URL the signatures are computed over.
    #[arg(long)]
    public_base_url: String,
    /// The AccountSid sent in each callback.
    #[arg(long, default_value = "AC00000000000000000000000000000000")]
    account_sid: String,
    /// Seeded messages (SIDs SM{i+1:032x} for i in 0..messages).
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Concurrent callback posters.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Share of callbacks posted twice (the copy right after the original, same idempotency token).
    #[arg(long, default_value_t = 0.05)]
    duplicate_share: f64,
    /// Share of messages whose three callbacks are posted in reverse order.
    #[arg(long, default_value_t = 0.02)]
    reorder_share: f64,
    /// Seed of the choices above (and part of each idempotency token).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time limit of the whole run, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_s: u64,
}

/// `wg-bench metrics`.
#[derive(Debug, Args)]
struct MetricsArgs {
    /// The gateway's base URL.
    #[arg(long)]
    url: String,
    /// A bearer token the gateway accepts.
    #[arg(long)]
    token: String,
    /// Requests to make, one after the other.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Query string appended to the path, with its `?` (empty: the gateway's defaults).
    #[arg(long, default_value = "")]
    query: String,
    /// Time limit of the whole run, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wg-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Load(args) => load(args).await,
            Command::Ingest(args) => ingest(args).await,
            Command::Metrics(args) => metrics(args).await,
        }
    });
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wg-bench: error: {e:#}");
            println!("{}", json!({ "ok": false, "error": format!("{e:#}") }));
            ExitCode::FAILURE
        }
    }
}

/// One client for the whole run: HTTP/1.1 keep-alive, a connection per concurrent task, no proxy
/// (loopback only), bounded requests.
fn http_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Per-task results: latencies (µs) of accepted requests, refusals by status (`error` for
/// requests that got no answer), and when the last accepted answer came, from the start.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    refused: BTreeMap<String, u64>,
    last_ok: Duration,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.refused {
            *self.refused.entry(k).or_insert(0) += v;
        }
        self.last_ok = self.last_ok.max(other.last_ok);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn refusals(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Merges the tallies of `tasks` as they finish; fails if one panicked or they take longer
    /// than `limit` (`what` names them in the error).
    async fn gather(mut tasks: tokio::task::JoinSet<Tally>, limit: Duration, what: &str) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let joined = tokio::time::timeout(limit, async {
            while let Some(done) = tasks.join_next().await {
                tally.merge(done.with_context(|| format!("one of {what} panicked"))?);
            }
            anyhow::Ok(())
        })
        .await;
        match joined {
            Ok(result) => result.map(|()| tally),
            Err(_) => bail!("{what} did not finish within {} s", limit.as_secs()),
        }
    }

    /// p50, p99 and max of the accepted requests' latencies, in milliseconds.
    fn latency_ms(&mut self) -> Latency {
        self.latencies_us.sort_unstable();
        let lat = &self.latencies_us;
        Latency {
            p50: percentile_ms(lat, 0.50),
            p99: percentile_ms(lat, 0.99),
            max: lat.last().map_or(0.0, |m| round3(f64::from(*m) / 1000.0)),
        }
    }

    /// Records one answer (or transport error); true if it was the expected status.
    async fn record(&mut self, started: Instant, t0: Instant, expected: u16, answer: reqwest::Result<reqwest::Response>) -> bool {
        let (key, detail) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the body to the end so the connection goes back to the pool.
                let body = response.bytes().await;
                match body {
                    Ok(_) if status == expected => {
                        let elapsed = t0.elapsed();
                        self.latencies_us.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                        self.last_ok = self.last_ok.max(started.elapsed());
                        return true;
                    }
                    Ok(body) => (status.to_string(), format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))),
                    Err(e) => ("error".to_owned(), format!("reading the answer: {e}")),
                }
            }
            Err(e) => ("error".to_owned(), format!("{e:#}")),
        };
        *self.refused.entry(key).or_insert(0) += 1;
        self.first_error.get_or_insert(detail);
        false
    }
}

/// A latency summary, in milliseconds.
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    round3(f64::from(sorted_us[rank - 1]) / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { (count as f64 / secs * 10.0).round() / 10.0 } else { 0.0 }
}

fn rfc3339(at: OffsetDateTime) -> anyhow::Result<String> {
    at.format(&Rfc3339).context("cannot format a time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert!((percentile_ms(&sorted, 0.5) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&[7000], 0.99) - 7.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 0.5).abs() < 1e-9);
    }
}
