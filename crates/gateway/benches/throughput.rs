//! End-to-end throughput: N messages through the HTTP API, the queue, the workers, the built-in
//! emulator and its status callbacks, until every one is `read`. Prints figures; asserts nothing
//! about speed. Loopback only, bounded.
//!
//! `cargo bench -p whatsapp-gateway --bench throughput` (env: BENCH_MESSAGES=2000,
//! BENCH_CLIENTS=16, WORKER_CONCURRENCY=8, DATABASE_URL to bench PostgreSQL).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use twilio_emulator::{EmulatorConfig, LifecycleDelays};
use whatsapp_gateway::config::Config;
use whatsapp_gateway::startup::{Application, RunOptions};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages = env_or("BENCH_MESSAGES", 2000);
    let clients = env_or("BENCH_CLIENTS", 16);
    let dir = std::env::temp_dir().join(format!("wg-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut vars: HashMap<String, String> =
        std::env::vars().filter(|(k, _)| ["DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX"].contains(&k.as_str())).collect();
    vars.entry("DATABASE_URL".into()).or_insert_with(|| format!("sqlite://{}/bench.db", dir.display()));
    vars.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    vars.insert("JWT_SECRET".into(), "bench-secret-0123456789abcdef".into());
    vars.insert("WORKER_CONCURRENCY".into(), env_or("WORKER_CONCURRENCY", 8).to_string());
    vars.insert("SENDER_RATE_PER_SEC".into(), "100000".into());
    vars.insert("WORKER_POLL_MS".into(), "20".into());
    // One client and one emulator address: lift the per-token and per-IP limits.
    vars.insert("RATE_LIMIT_API_PER_MIN".into(), "100000000".into());
    vars.insert("RATE_LIMIT_WEBHOOK_PER_MIN".into(), "100000000".into());
    let config = Config::from_vars(&vars)?;
    let emulator = EmulatorConfig {
        delays: LifecycleDelays {
            to_sent: Duration::from_millis(5),
            to_delivered: Duration::from_millis(10),
            to_read: Duration::from_millis(15),
        },
        enforce_window: false,
        sender_rate_per_sec: 0,
        ..EmulatorConfig::default()
    };
    let backend = vars["DATABASE_URL"].split(':').next().unwrap_or_default().to_owned();
    let app = Application::build(config, RunOptions { api: true, workers: true, emulator: Some(emulator), ..Default::default() }).await?;
    let base = app.base_url().to_owned();
    let gateway = app.gateway().clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped(false));
    let token = Arc::new(whatsapp_gateway::http::mint_token(&"bench-secret-0123456789abcdef".to_owned().into(), "bench", 3600)?);
    let http = reqwest::Client::new();

    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (c..messages).step_by(clients) {
                let body = serde_json::json!({"to": format!("+1415555{:04}", i % 10_000), "body": format!("bench {i}")});
                let t = Instant::now();
                let r = http.post(format!("{base}/api/v1/whatsapp/send")).bearer_auth(token.as_str()).json(&body).send().await?;
                anyhow::ensure!(r.status() == 202, "send refused: {}", r.status());
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let accepted_in = start.elapsed();
    latencies.sort();

    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut read, mut queue_depth) = (0, 0);
    while Instant::now() < deadline {
        let buckets = gateway.store().metrics_buckets(whatsapp_gateway::store::Granularity::Day, 0, i64::MAX / 2, "").await?;
        read = buckets.iter().map(|b| b.read).sum::<i64>() as usize;
        if read >= messages {
            break;
        }
        queue_depth = gateway.queue().depth().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = start.elapsed();
    println!("backend            {backend}{}", if vars.contains_key("REDIS_URL") { " + redis" } else { "" });
    println!("messages           {messages} ({clients} HTTP clients, {} workers)", vars["WORKER_CONCURRENCY"]);
    println!("API accepted       {:.0} msg/s ({:.2?} for all)", messages as f64 / accepted_in.as_secs_f64(), accepted_in);
    println!("API latency        p50 {:.2?}  p99 {:.2?}", percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "end to end (read)  {:.0} msg/s ({read}/{messages} read in {:.2?}; queue depth at last poll {queue_depth})",
        read as f64 / total.as_secs_f64(),
        total
    );
    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(read >= messages, "only {read} of {messages} messages were read within the time limit");
    Ok(())
}
