//! `metrics`: sequential delivery-metrics requests.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

use crate::{MetricsArgs, Tally, base, http_client, per_second, round3};

/// Times `--requests` sequential delivery-metrics queries.
pub(crate) async fn metrics(args: MetricsArgs) -> anyhow::Result<Value> {
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
    let latency = tally.latency_ms();
    let report = json!({
        "ok": true,
        "command": "metrics",
        "requests": args.requests,
        "query": args.query,
        "p50_ms": latency.p50,
        "p99_ms": latency.p99,
        "max_ms": latency.max,
        "requests_per_s": per_second(args.requests, elapsed),
        "seconds": round3(elapsed.as_secs_f64()),
    });
    eprintln!("wg-bench metrics: p50 {} ms, p99 {} ms, max {} ms", report["p50_ms"], report["p99_ms"], report["max_ms"]);
    Ok(report)
}
