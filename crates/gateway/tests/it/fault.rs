//! Fault test for the production backends: 3 gateway processes (2 × `serve`, 1 × `worker`) on one
//! PostgreSQL, one Redis and the Twilio emulator; 5,000 messages; during the run one worker process
//! is killed with SIGKILL, Redis is flushed (FLUSHALL), Redis is restarted, PostgreSQL is
//! restarted. At the end every message must be `read` (no status lost: a callback Twilio gave up on
//! is recovered by the poller) and the emulator
//! must have received exactly one create per message. Prints the figures; exits non-zero on any
//! violation. Loopback only; bounded (10 minutes at most).
//!
//! `cargo test -p whatsapp-gateway --test it -- --ignored --nocapture fault::` (FAULT_MESSAGES=5000).
//! It restarts the machine's PostgreSQL and Redis, so it is ignored by a plain `cargo test` and
//! run alone by `scripts/test` after everything else.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::helpers::process::{BIN, emulator_url, free_port};
use serde_json::{Value, json};
use sqlx::Connection as _;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SECRET: &str = "fault-test-secret-0123456789";
/// How long Redis and PostgreSQL each stay down.
const OUTAGE: Duration = Duration::from_millis(2000);

struct Proc {
    name: String,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {program}"))?;
    ensure!(status.success(), "{program} {args:?} failed: {status}");
    Ok(())
}

fn restart_redis() -> anyhow::Result<()> {
    let _ = sh("redis-cli", &["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"]);
    // Down long enough that readiness (polled every 100 ms, probing with a timeout under 1 s)
    // must see it, however fast the machine.
    std::thread::sleep(OUTAGE);
    std::fs::create_dir_all("/var/lib/redis").ok();
    std::fs::create_dir_all("/var/log/redis").ok();
    sh(
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
    )?;
    for _ in 0..50 {
        if sh("redis-cli", &["-h", "127.0.0.1", "-p", "6379", "ping"]).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("Redis did not come back")
}

fn restart_postgres() -> anyhow::Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")?.next().context("no PostgreSQL cluster")??.file_name();
    let version = version.to_string_lossy().to_string();
    sh("pg_ctlcluster", &["--skip-systemctl-redirect", "--mode", "fast", &version, "main", "stop"])?;
    std::thread::sleep(OUTAGE);
    sh("pg_ctlcluster", &["--skip-systemctl-redirect", &version, "main", "start"])?;
    for _ in 0..100 {
        if sh("pg_isready", &["-h", "127.0.0.1", "-p", "5432"]).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("PostgreSQL did not come back")
}

fn start_emulator() -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new(BIN)
        .arg("emulator")
        .envs([
            ("EMULATOR_BIND_ADDR", "127.0.0.1:0"),
            ("EMULATOR_ENFORCE_WINDOW", "false"),
            ("EMULATOR_SENDER_RATE", "0"),
            ("EMULATOR_CALLBACK_MAX_ATTEMPTS", "9"),
            ("RUST_LOG", "error"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let url = emulator_url(&mut child);
    Ok((Proc { name: "emulator".into(), child }, url))
}

fn start_gateway(command: &str, port: u16, env: &HashMap<String, String>) -> anyhow::Result<Proc> {
    let path = format!("{}/wg-fault-{command}-{port}-{}.log", std::env::temp_dir().display(), uuid::Uuid::new_v4().simple());
    let log = std::fs::File::create(&path)?;
    let child =
        Command::new(BIN).arg(command).envs(env).env("BIND_ADDR", format!("127.0.0.1:{port}")).stdout(Stdio::null()).stderr(log).spawn()?;
    Ok(Proc { name: format!("{command}:{port}"), child })
}

async fn wait_healthy(http: &reqwest::Client, port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("gateway on port {port} did not start")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts PostgreSQL and Redis: scripts/test runs it alone"]
async fn five_thousand_messages_survive_a_killed_worker_flushall_and_restarts() -> anyhow::Result<()> {
    let messages: usize = std::env::var("FAULT_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let started = Instant::now();
    let database = format!("wg_fault_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&mut admin).await?;
    drop(admin);
    let result = run(messages, &database).await;
    if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))).execute(&mut admin).await;
    }
    println!("fault test finished in {:.1?}", started.elapsed());
    result
}

async fn run(messages: usize, database: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let (_emulator, emulator_url) = start_emulator()?;
    let env: HashMap<String, String> = [
        ("DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{database}")),
        ("REDIS_URL", "redis://127.0.0.1:6379".into()),
        ("REDIS_KEY_PREFIX", format!("wg-fault-{}", uuid::Uuid::new_v4().simple())),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000".into()),
        ("TWILIO_AUTH_TOKEN", "emulator-token".into()),
        ("TWILIO_WHATSAPP_FROM", "+14155238886".into()),
        ("TWILIO_API_BASE_URL", emulator_url.clone()),
        ("TWILIO_TIMEOUT_MS", "3000".into()),
        ("WORKER_LEASE_MS", "5000".into()),
        ("WORKER_CONCURRENCY", "8".into()),
        ("RETRY_BASE_MS", "200".into()),
        ("RETRY_MAX_MS", "2000".into()),
        ("MAX_ATTEMPTS", "30".into()),
        ("SWEEPER_INTERVAL_MS", "1000".into()),
        // A callback Twilio gave up on while the database restarted is recovered by asking.
        ("POLL_AFTER_MS", "5000".into()),
        ("POLL_RATE_PER_SEC", "200".into()),
        ("SENDER_RATE_PER_SEC", "10000".into()),
        ("RATE_LIMIT_API_PER_MIN", "1000000".into()),
        // Every callback comes from the one emulator address: lift the per-IP webhook limit,
        // as a deployment must above its peak callback rate (about 3 per message).
        ("RATE_LIMIT_WEBHOOK_PER_MIN", "1000000".into()),
        ("JWT_SECRET", SECRET.into()),
        ("RUST_LOG", "warn".into()),
        // The recipients never wrote (the emulator's window is off too).
        ("WHATSAPP_WINDOW_CHECK", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let migrate = Command::new(BIN).arg("migrate").envs(&env).stdout(Stdio::null()).status()?;
    ensure!(migrate.success(), "migrate failed");
    let ports = [free_port(), free_port(), free_port()];
    // Twilio calls one public URL (a load balancer in production): here, the first API process.
    let mut env = env;
    env.insert("PUBLIC_BASE_URL".into(), format!("http://127.0.0.1:{}", ports[0]));
    let _api_a = start_gateway("serve", ports[0], &env)?;
    let _api_b = start_gateway("serve", ports[1], &env)?;
    let mut worker = Some(start_gateway("worker", ports[2], &env)?);
    for port in ports {
        wait_healthy(&http, port).await?;
    }
    let token = Arc::new(whatsapp_gateway::security::mint_token(&SECRET.to_owned().into(), "fault-test", 3600)?);
    println!("3 gateway processes up (serve :{}, serve :{}, worker :{}); sending {messages} messages", ports[0], ports[1], ports[2]);

    // Readiness of one API process, watched through the faults: it must fail while a backend is
    // down and recover by itself.
    let readiness = Arc::new(std::sync::Mutex::new(Vec::<(Duration, u16)>::new()));
    let watch_start = Instant::now();
    let watcher = {
        let (http, readiness) = (http.clone(), readiness.clone());
        let url = format!("http://127.0.0.1:{}/readyz", ports[1]);
        let start = watch_start;
        tokio::spawn(async move {
            loop {
                let code = http.get(&url).timeout(Duration::from_secs(2)).send().await.map_or(0, |r| r.status().as_u16());
                {
                    let mut seen = readiness.lock().unwrap();
                    if seen.last().is_none_or(|(_, last)| *last != code) {
                        seen.push((start.elapsed(), code));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let client_retries = Arc::new(AtomicUsize::new(0));
    let send_start = Instant::now();
    let mut senders = Vec::new();
    for c in 0..16usize {
        let (http, token, sent, client_retries) = (http.clone(), token.clone(), sent.clone(), client_retries.clone());
        senders.push(tokio::spawn(async move {
            for i in (c..messages).step_by(16) {
                let port = ports[i % 2];
                let body = json!({"to": format!("+1415555{i:04}"), "body": format!("fault {i}"), "reference": format!("fault-{i}")});
                // The API may be briefly unavailable (PostgreSQL restarting): retry with the same
                // idempotency key, as a careful client would.
                let mut ok = false;
                for _ in 0..120 {
                    let answer = http
                        .post(format!("http://127.0.0.1:{port}/api/v1/whatsapp/send"))
                        .bearer_auth(token.as_str())
                        .header("Idempotency-Key", format!("fault-{i}"))
                        .json(&body)
                        .send()
                        .await;
                    if answer.as_ref().is_ok_and(|r| r.status() == 202) {
                        ok = true;
                        break;
                    }
                    client_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                anyhow::ensure!(ok, "message {i} could not be submitted");
                sent.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }

    // Faults, each once a share of the messages has been submitted.
    let wait_for_sent = async |share: usize| {
        while sent.load(Ordering::Relaxed) < messages * share / 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for_sent(20).await;
    if let Some(mut w) = worker.take() {
        w.child.kill()?;
        w.child.wait()?;
        println!(
            "[{:>6.1?}] killed -9 the worker process ({}) at {} submitted",
            send_start.elapsed(),
            w.name,
            sent.load(Ordering::Relaxed)
        );
    }
    wait_for_sent(40).await;
    sh("redis-cli", &["-h", "127.0.0.1", "-p", "6379", "flushall"])?;
    println!("[{:>6.1?}] FLUSHALL on Redis at {} submitted", send_start.elapsed(), sent.load(Ordering::Relaxed));
    let _worker2 = start_gateway("worker", ports[2], &env)?;
    println!("[{:>6.1?}] worker process restarted", send_start.elapsed());
    wait_for_sent(60).await;
    let redis_down = watch_start.elapsed();
    tokio::task::spawn_blocking(restart_redis).await??;
    let redis_outage = redis_down..watch_start.elapsed();
    println!(
        "[{:>6.1?}] Redis restarted (no persistence: everything in it lost) at {} submitted",
        send_start.elapsed(),
        sent.load(Ordering::Relaxed)
    );
    wait_for_sent(80).await;
    let postgres_down = watch_start.elapsed();
    tokio::task::spawn_blocking(restart_postgres).await??;
    let postgres_outage = postgres_down..watch_start.elapsed();
    println!("[{:>6.1?}] PostgreSQL restarted at {} submitted", send_start.elapsed(), sent.load(Ordering::Relaxed));
    for s in senders {
        s.await??;
    }
    let submitted_in = send_start.elapsed();

    // Wait for every message to reach a final status.
    let pool = sqlx::PgPool::connect(&env["DATABASE_URL"]).await?;
    let deadline = Instant::now() + Duration::from_secs(480);
    let mut by_status: Vec<(String, i64)> = Vec::new();
    loop {
        by_status = sqlx::query_as("SELECT status, COUNT(*) FROM messages GROUP BY status ORDER BY status")
            .fetch_all(&pool)
            .await
            .unwrap_or(by_status);
        let read = by_status.iter().find(|(s, _)| s == "read").map_or(0, |(_, n)| *n);
        let terminal =
            by_status.iter().filter(|(s, _)| matches!(s.as_str(), "read" | "failed" | "undelivered")).map(|(_, n)| n).sum::<i64>();
        if read as usize >= messages || (terminal as usize >= messages && Instant::now() > deadline - Duration::from_secs(420)) {
            break;
        }
        ensure!(Instant::now() < deadline, "timed out; statuses: {by_status:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = send_start.elapsed();
    watcher.abort();
    let readiness = readiness.lock().unwrap().clone();
    let counters: Value = http.get(format!("{emulator_url}/_emulator/counters")).send().await?.json().await?;
    let per_recipient = counters["created_by_recipient"].as_object().cloned().unwrap_or_default();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT to_addr, COUNT(*) FROM messages WHERE direction = 'outbound' GROUP BY to_addr").fetch_all(&pool).await?;
    let duplicates_at_twilio = per_recipient.values().filter(|n| n.as_u64().unwrap_or(0) > 1).count();
    let missing_at_twilio = rows.iter().filter(|(to, _)| per_recipient.get(to).and_then(Value::as_u64).unwrap_or(0) == 0).count();
    let duplicate_messages = rows.iter().filter(|(_, n)| *n > 1).count();
    let reconciled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM send_attempts WHERE outcome = 'reconciled'").fetch_one(&pool).await?;
    let retried: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM send_attempts WHERE outcome IN ('retryable', 'unknown', 'lost')").fetch_one(&pool).await?;

    println!("--- figures");
    println!(
        "messages submitted        {messages} in {submitted_in:.1?} ({client_retries} client retries during faults)",
        client_retries = client_retries.load(Ordering::Relaxed)
    );
    println!("final statuses            {by_status:?}");
    println!(
        "end to end                {:.0} msg/s ({messages} read in {total:.1?}, faults included)",
        messages as f64 / total.as_secs_f64()
    );
    println!(
        "creates at the emulator   {} for {} messages; recipients with >1 create: {duplicates_at_twilio}; without: {missing_at_twilio}",
        counters["messages_created"],
        rows.len()
    );
    println!("duplicate messages in DB  {duplicate_messages}");
    println!(
        "/readyz transitions       {}",
        readiness.iter().map(|(t, c)| format!("{c}@{:.1}s", t.as_secs_f64())).collect::<Vec<_>>().join(" → ")
    );
    println!("send attempts             {retried} retried/unknown/lost, {reconciled} reconciled with Twilio");
    println!(
        "status callbacks          {} attempted, {} answered 2xx, {} non-2xx, {} unanswered; delivered by status {}",
        counters["callbacks_attempted"],
        counters["callbacks_answered_2xx"],
        counters["callbacks_answered_non_2xx"],
        counters["callbacks_failed_to_connect"],
        counters["callbacks_delivered_by_status"]
    );
    let read = by_status.iter().find(|(s, _)| s == "read").map_or(0, |(_, n)| *n) as usize;
    ensure!(rows.len() == messages, "expected {messages} messages in the database, found {}", rows.len());
    ensure!(duplicates_at_twilio == 0 && missing_at_twilio == 0, "not exactly one create per message");
    ensure!(
        counters["messages_created"].as_u64() == Some(messages as u64),
        "creates {} != messages {messages}",
        counters["messages_created"]
    );
    ensure!(read == messages, "only {read} of {messages} messages reached read: a status callback was lost");
    // Readiness was 503 at some time of each outage: at its start, or from a change within it.
    let not_ready_during = |outage: &std::ops::Range<Duration>| {
        readiness.iter().rev().find(|(at, _)| *at <= outage.start).is_some_and(|(_, c)| *c == 503)
            || readiness.iter().any(|(at, c)| *c == 503 && outage.contains(at))
    };
    for (what, outage) in [("Redis", &redis_outage), ("PostgreSQL", &postgres_outage)] {
        ensure!(not_ready_during(outage), "/readyz did not report {what} down during its outage ({outage:?}): {readiness:?}");
    }
    ensure!(readiness.last().is_some_and(|(_, c)| *c == 200), "/readyz did not recover: {readiness:?}");
    println!("fault test: 1 passed, 0 failed");
    Ok(())
}
