//! `load`: concurrent sends, then the wait until every accepted message is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{LoadArgs, Tally, base, http_client, per_second, rfc3339, round3};

/// The application's side of the event webhooks: answers every post 204 and counts the distinct
/// `webhook-id`s (a repeat of one is a delivery retried, not a new event).
struct EventReceiver {
    seen: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    requests: Arc<AtomicUsize>,
}

impl EventReceiver {
    async fn start(port: u16) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("cannot listen on port {port}"))?;
        let seen: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, r) = (seen.clone(), requests.clone());
        let app = axum::Router::new().route(
            "/events",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let (s, r) = (s.clone(), r.clone());
                async move {
                    r.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                        s.lock().expect("not poisoned").insert(id.to_owned());
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { seen, requests })
    }

    fn distinct(&self) -> usize {
        self.seen.lock().expect("not poisoned").len()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Sends `--messages` messages from `--clients` tasks, then waits until every accepted one is read.
pub(crate) async fn load(args: LoadArgs) -> anyhow::Result<Value> {
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

    let events = match args.events_port {
        Some(port) => Some(EventReceiver::start(port).await?),
        None => None,
    };
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
    let mut tally = Tally::gather(tasks, limit, "the client tasks").await?;
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
    let pending_url = format!("{base}/api/v1/events?status=pending&limit=1");
    let deadline = started + limit;
    let mut polls = 0u64;
    let mut all_read: Option<Duration> = None;
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
        // With events: every message read, and no event left to deliver (the gateway lists none
        // pending; a message has 3 or 4 status events, as its callbacks come in order or not).
        let events_left = match &events {
            Some(_) if read >= accepted as u64 => {
                let answer = client.get(&pending_url).header(AUTHORIZATION, auth.clone()).send().await;
                match answer {
                    Ok(response) if response.status() == 200 => {
                        let page: Value = response.json().await.context("the event list is not JSON")?;
                        page["events"].as_array().map_or(0, Vec::len)
                    }
                    Ok(response) => bail!("GET /api/v1/events answered {}", response.status()),
                    Err(e) => bail!("GET /api/v1/events failed: {e:#}"),
                }
            }
            Some(_) => 1,
            None => 0,
        };
        if read >= accepted as u64 && all_read.is_none() {
            all_read = Some(started.elapsed());
        }
        if read >= accepted as u64 && events_left == 0 {
            break read;
        }
        if Instant::now() >= deadline {
            let received = events.as_ref().map_or(0, EventReceiver::distinct);
            bail!(
                "only {read} of {accepted} accepted messages were read, or events are still pending ({received} received), within {} s",
                args.timeout_s
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let end_to_end = started.elapsed();
    if let Some(at) = all_read {
        eprintln!(
            "wg-bench load: every message read after {:.2} s; every event delivered after {:.2} s",
            at.as_secs_f64(),
            end_to_end.as_secs_f64()
        );
    }
    let latency = tally.latency_ms();
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
        "accept_p50_ms": latency.p50,
        "accept_p99_ms": latency.p99,
        "accept_max_ms": latency.max,
        "accept_seconds": round3(tally.last_ok.as_secs_f64()),
        "end_to_end_per_s": per_second(accepted, end_to_end),
        "seconds": round3(end_to_end.as_secs_f64()),
        "metrics_polls": polls,
        "all_read_seconds": all_read.map(|d| round3(d.as_secs_f64())),
    });
    let mut report = report;
    if let Some(events) = &events {
        report["events_received"] = json!(events.distinct());
        report["event_requests"] = json!(events.requests());
    }
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
