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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Args, Parser, Subcommand};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

async fn load(args: LoadArgs) -> anyhow::Result<Value> {
    ensure!(args.messages > 0 && args.clients > 0, "--messages and --clients must be at least 1");
    let limit = Duration::from_secs(args.timeout_s);
    let client = http_client(args.clients)?;
    let base = base(&args.url);
    let send_url: Arc<str> = format!("{base}/api/v1/whatsapp/send").into();
    let auth = HeaderValue::from_str(&format!("Bearer {}", args.token)).context("--token is not a valid header value")?;
    let json_type = HeaderValue::from_static("application/json");
    let bodies: &'static [String] =
        Vec::leak((0..args.messages).map(|i| format!(r#"{{"to":"+1415555{:04}","body":"bench {i}"}}"#, i % 10_000)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let max_failures = args.messages / 100;
    let from = rfc3339(OffsetDateTime::now_utc() - time::Duration::days(2))?;
    eprintln!("wg-bench load: {} messages, {} clients → {base}", args.messages, args.clients);

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients.min(args.messages) {
        let (client, send_url, auth, json_type) = (client.clone(), send_url.clone(), auth.clone(), json_type.clone());
        let (next, failures) = (next.clone(), failures.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || failures.load(Ordering::Relaxed) > max_failures {
                    break;
                }
                let t0 = Instant::now();
                let answer = client
                    .post(&*send_url)
                    .header(AUTHORIZATION, auth.clone())
                    .header(CONTENT_TYPE, json_type.clone())
                    .body(bodies[i].as_bytes())
                    .send()
                    .await;
                if !tally.record(started, t0, 202, answer).await {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            tally
        });
    }
    let mut tally = Tally::default();
    let joined = tokio::time::timeout(limit, async {
        while let Some(done) = tasks.join_next().await {
            tally.merge(done.context("a client task panicked")?);
        }
        anyhow::Ok(())
    })
    .await;
    match joined {
        Ok(result) => result?,
        Err(_) => bail!("sending did not finish within {} s", args.timeout_s),
    }
    let accepted = tally.latencies_us.len();
    let refused = tally.refusals();
    if refused as usize > max_failures {
        bail!(
            "{refused} of {} sends failed (more than 1%): {:?}; first: {}",
            args.messages,
            tally.refused,
            tally.first_error.as_deref().unwrap_or("?")
        );
    }
    eprintln!("wg-bench load: {accepted} accepted in {:.2?}, waiting until they are read", tally.last_ok);

    // Poll the delivery metrics until every accepted message is read.
    let to = rfc3339(OffsetDateTime::now_utc() + time::Duration::days(1))?;
    let metrics_url = format!("{base}/api/v1/whatsapp/delivery-metrics?granularity=day&from={from}&to={to}");
    let deadline = started + limit;
    let mut polls = 0u64;
    let read = loop {
        polls += 1;
        let answer = client.get(&metrics_url).header(AUTHORIZATION, auth.clone()).send().await;
        let read = match answer {
            Ok(response) if response.status() == 200 => {
                let report: Value = response.json().await.context("the delivery metrics are not JSON")?;
                report["totals"]["read"].as_u64().context("the delivery metrics have no totals.read")?
            }
            Ok(response) => bail!("GET delivery-metrics answered {}", response.status()),
            Err(e) => bail!("GET delivery-metrics failed: {e:#}"),
        };
        if read >= accepted as u64 {
            break read;
        }
        if Instant::now() >= deadline {
            bail!("only {read} of {accepted} accepted messages were read within {} s", args.timeout_s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let end_to_end = started.elapsed();
    tally.latencies_us.sort_unstable();
    let lat = &tally.latencies_us;
    let report = json!({
        "ok": true,
        "command": "load",
        "messages": args.messages,
        "clients": args.clients,
        "accepted": accepted,
        "refused": tally.refused,
        "first_refusal": tally.first_error,
        "read": read,
        "accepted_per_s": per_second(accepted, tally.last_ok),
        "accept_p50_ms": percentile_ms(lat, 0.50),
        "accept_p99_ms": percentile_ms(lat, 0.99),
        "accept_max_ms": lat.last().map_or(0.0, |m| round3(f64::from(*m) / 1000.0)),
        "accept_seconds": round3(tally.last_ok.as_secs_f64()),
        "end_to_end_per_s": per_second(accepted, end_to_end),
        "seconds": round3(end_to_end.as_secs_f64()),
        "metrics_polls": polls,
    });
    eprintln!(
        "wg-bench load: accepted {} msg/s (p50 {} ms, p99 {} ms); end to end {} msg/s in {:.2} s",
        report["accepted_per_s"],
        report["accept_p50_ms"],
        report["accept_p99_ms"],
        report["end_to_end_per_s"],
        end_to_end.as_secs_f64()
    );
    Ok(report)
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_component(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
        }
    }
}

fn form_encode(params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(512);
    for (n, (name, value)) in params.iter().enumerate() {
        if n > 0 {
            out.push('&');
        }
        form_component(&mut out, name);
        out.push('=');
        form_component(&mut out, value);
    }
    out
}

/// One prepared status callback: its body and headers, ready to post.
struct Callback {
    body: String,
    signature: HeaderValue,
    token: HeaderValue,
}

/// The callbacks for `args.messages` messages and the order to post them in (an index appears
/// twice, back to back, for a duplicated callback).
fn prepare_callbacks(args: &IngestArgs) -> anyhow::Result<(Vec<Callback>, Vec<usize>, usize)> {
    let url = format!("{}/api/v1/whatsapp/status", base(&args.public_base_url));
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut callbacks = Vec::with_capacity(args.messages * 3);
    let mut order = Vec::with_capacity(args.messages * 3 + args.messages / 4);
    let mut reordered = 0;
    for i in 0..args.messages {
        let sid = format!("SM{:032x}", i + 1);
        let to = format!("whatsapp:+1415555{:04}", i % 10_000);
        let mut statuses = ["sent", "delivered", "read"];
        if rng.f64() < args.reorder_share {
            statuses.reverse();
            reordered += 1;
        }
        for status in statuses {
            let mut params: Vec<(&str, &str)> = vec![
                ("MessageSid", &sid),
                ("SmsSid", &sid),
                ("MessageStatus", status),
                ("SmsStatus", status),
                ("AccountSid", &args.account_sid),
                ("From", "whatsapp:+14155238886"),
                ("To", &to),
                ("ApiVersion", "2010-04-01"),
                ("ChannelPrefix", "whatsapp"),
            ];
            if status == "read" {
                params.push(("EventType", "READ"));
            }
            let signature = twilio_signature::compute(args.auth_token.as_bytes(), &url, &params);
            let token = format!("{}-{:016x}-{}", args.account_sid, args.seed, callbacks.len());
            let index = callbacks.len();
            callbacks.push(Callback {
                body: form_encode(&params),
                signature: HeaderValue::from_str(&signature).context("signature header")?,
                token: HeaderValue::from_str(&token).context("--account-sid is not a valid header value")?,
            });
            order.push(index);
            if rng.f64() < args.duplicate_share {
                order.push(index);
            }
        }
    }
    Ok((callbacks, order, reordered))
}

async fn ingest(args: IngestArgs) -> anyhow::Result<Value> {
    ensure!(args.messages > 0 && args.concurrency > 0, "--messages and --concurrency must be at least 1");
    ensure!((0.0..=1.0).contains(&args.duplicate_share) && (0.0..=1.0).contains(&args.reorder_share), "shares are from 0 to 1");
    let limit = Duration::from_secs(args.timeout_s);
    let client = http_client(args.concurrency)?;
    let status_url: Arc<str> = format!("{}/api/v1/whatsapp/status", base(&args.url)).into();
    let (callbacks, order, reordered) = prepare_callbacks(&args)?;
    let duplicates = order.len() - callbacks.len();
    let callbacks: &'static [Callback] = Vec::leak(callbacks);
    let order: &'static [usize] = Vec::leak(order);
    let form_type = HeaderValue::from_static("application/x-www-form-urlencoded");
    let signature_header = HeaderName::try_from(twilio_signature::SIGNATURE_HEADER).context("signature header name")?;
    let token_header = HeaderName::from_static("i-twilio-idempotency-token");
    eprintln!(
        "wg-bench ingest: {} callbacks ({} messages, {reordered} reordered, {duplicates} duplicates), {} tasks → {}",
        order.len(),
        args.messages,
        args.concurrency,
        base(&args.url)
    );

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, status_url, form_type, next) = (client.clone(), status_url.clone(), form_type.clone(), next.clone());
        let (signature_header, token_header) = (signature_header.clone(), token_header.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&index) = order.get(n) else { break };
                let callback = &callbacks[index];
                let t0 = Instant::now();
                let answer = client
                    .post(&*status_url)
                    .header(CONTENT_TYPE, form_type.clone())
                    .header(signature_header.clone(), callback.signature.clone())
                    .header(token_header.clone(), callback.token.clone())
                    .body(callback.body.as_bytes())
                    .send()
                    .await;
                tally.record(started, t0, 200, answer).await;
            }
            tally
        });
    }
    let mut tally = Tally::default();
    let joined = tokio::time::timeout(limit, async {
        while let Some(done) = tasks.join_next().await {
            tally.merge(done.context("a callback task panicked")?);
        }
        anyhow::Ok(())
    })
    .await;
    match joined {
        Ok(result) => result?,
        Err(_) => bail!("the callbacks did not finish within {} s", args.timeout_s),
    }
    let elapsed = started.elapsed();
    tally.latencies_us.sort_unstable();
    let lat = &tally.latencies_us;
    let report = json!({
        "ok": tally.refusals() == 0,
        "command": "ingest",
        "messages": args.messages,
        "concurrency": args.concurrency,
        "callbacks": order.len(),
        "originals": callbacks.len(),
        "duplicates": duplicates,
        "reordered_messages": reordered,
        "answered_200": lat.len(),
        "refused": tally.refused,
        "first_refusal": tally.first_error,
        "callbacks_per_s": per_second(order.len(), elapsed),
        "p50_ms": percentile_ms(lat, 0.50),
        "p99_ms": percentile_ms(lat, 0.99),
        "max_ms": lat.last().map_or(0.0, |m| round3(f64::from(*m) / 1000.0)),
        "seconds": round3(elapsed.as_secs_f64()),
    });
    eprintln!(
        "wg-bench ingest: {} callbacks/s (p50 {} ms, p99 {} ms), {} not answered 200",
        report["callbacks_per_s"],
        report["p50_ms"],
        report["p99_ms"],
        tally.refusals()
    );
    if tally.refusals() > 0 {
        eprintln!("wg-bench ingest: refusals {:?}; first: {}", tally.refused, tally.first_error.as_deref().unwrap_or("?"));
    }
    Ok(report)
}

async fn metrics(args: MetricsArgs) -> anyhow::Result<Value> {
    ensure!(args.requests > 0, "--requests must be at least 1");
    let client = http_client(1)?;
    let url = format!("{}/api/v1/whatsapp/delivery-metrics{}", base(&args.url), args.query);
    let auth = HeaderValue::from_str(&format!("Bearer {}", args.token)).context("--token is not a valid header value")?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_s);
    let mut tally = Tally::default();
    for _ in 0..args.requests {
        ensure!(Instant::now() < deadline, "the requests did not finish within {} s", args.timeout_s);
        let t0 = Instant::now();
        let answer = client.get(&url).header(AUTHORIZATION, auth.clone()).send().await;
        if !tally.record(started, t0, 200, answer).await {
            bail!("GET {url}: {}", tally.first_error.as_deref().unwrap_or("?"));
        }
    }
    let elapsed = started.elapsed();
    tally.latencies_us.sort_unstable();
    let lat = &tally.latencies_us;
    let report = json!({
        "ok": true,
        "command": "metrics",
        "requests": args.requests,
        "query": args.query,
        "p50_ms": percentile_ms(lat, 0.50),
        "p99_ms": percentile_ms(lat, 0.99),
        "max_ms": lat.last().map_or(0.0, |m| round3(f64::from(*m) / 1000.0)),
        "requests_per_s": per_second(args.requests, elapsed),
        "seconds": round3(elapsed.as_secs_f64()),
    });
    eprintln!("wg-bench metrics: p50 {} ms, p99 {} ms, max {} ms", report["p50_ms"], report["p99_ms"], report["max_ms"]);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_matches_what_twilio_sends() {
        assert_eq!(form_encode(&[("To", "whatsapp:+14155550001"), ("Body", "a b&c")]), "To=whatsapp%3A%2B14155550001&Body=a+b%26c");
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert!((percentile_ms(&sorted, 0.5) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&sorted, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile_ms(&[7000], 0.99) - 7.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 0.5).abs() < 1e-9);
    }

    #[test]
    fn callbacks_cover_every_message_and_duplicates_follow_their_original() {
        let args = IngestArgs {
            url: "http://127.0.0.1:1".into(),
            auth_token: "secret".into(),
            public_base_url: "http://127.0.0.1:1/".into(),
            account_sid: "AC00000000000000000000000000000000".into(),
            messages: 200,
            concurrency: 4,
            duplicate_share: 0.1,
            reorder_share: 0.1,
            seed: 7,
            timeout_s: 1,
        };
        let (callbacks, order, reordered) = prepare_callbacks(&args).unwrap();
        assert_eq!(callbacks.len(), 600);
        assert!(reordered > 0 && order.len() > 600);
        // Every callback appears, in order, each at most twice and then back to back.
        let mut expected = 0;
        for (n, &index) in order.iter().enumerate() {
            if index + 1 == expected {
                assert_eq!(order[n - 1], index);
            } else {
                assert_eq!(index, expected);
                expected += 1;
            }
        }
        assert_eq!(expected, 600);
        let first = &callbacks[0];
        assert!(first.body.starts_with("MessageSid=SM00000000000000000000000000000001&"), "{}", first.body);
        let params: Vec<(String, String)> = first
            .body
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.replace("%3A", ":").replace("%2B", "+"))
            })
            .collect();
        let signature = first.signature.to_str().unwrap();
        assert!(twilio_signature::validate(
            b"secret",
            "http://127.0.0.1:1/api/v1/whatsapp/status",
            twilio_signature::Payload::Form(&params),
            signature
        ));
    }
}
