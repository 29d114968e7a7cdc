//! Secrets never reach the output. The real binary runs a full cycle (a message sent through a
//! standalone emulator to `read`, an incoming message, a bad request, webhooks with an invalid
//! and a secondary-token signature, bad bearer tokens) with distinctive secret values and
//! `RUST_LOG=debug`, once with text logs and once with `LOG_FORMAT=json`; after it is killed, its
//! captured stdout and stderr must contain no secret, nor the base64 of the Basic auth credentials
//! `ACxxx:token`. `Config`'s `Debug` print must not contain them either. Loopback only, bounded in
//! time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use whatsapp_gateway::config::Config;

use crate::helpers::process::{BIN, Killed, free_port};

const ACCOUNT_SID: &str = "AC5ec2e75ec2e75ec2e75ec2e75ec2e75e";
const JWT_SECRET: &str = "JwtSecretQz8Wv3Lm5Kp7Rt9Xy2Nb4";
const AUTH_TOKEN: &str = "AuthTokenHj6Df1Gs8Ak3Ze5Uc7Vo9";
const SECONDARY_AUTH_TOKEN: &str = "SecondTokenPw2Yq4Ei6Ru8Tn0Mx3";
// Only for the `Debug` check: these are never given to a running process.
const DATABASE_PASSWORD: &str = "DbPasswordKf5Lb7Nc9Jd2Hg4";
const REDIS_PASSWORD: &str = "RedisPasswordSv3Bw5Cx7Dz9";
const TO: &str = "+14155550177";

fn basic(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{token}"))
}

/// Every value that must never be printed, with a name for the failure message.
fn secrets() -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("JWT_SECRET", JWT_SECRET.to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("TWILIO_SECONDARY_AUTH_TOKEN", SECONDARY_AUTH_TOKEN.to_owned()),
        ("base64(ACCOUNT_SID:TWILIO_AUTH_TOKEN)", basic(AUTH_TOKEN)),
        ("base64(ACCOUNT_SID:TWILIO_SECONDARY_AUTH_TOKEN)", basic(SECONDARY_AUTH_TOKEN)),
        ("base64(ACCOUNT_SID:TWILIO_AUTH_TOKEN) without padding", basic(AUTH_TOKEN).trim_end_matches('=').to_owned()),
    ];
    // A distinctive part of each raw secret too: a truncated or split print leaks as well.
    for (name, value) in
        [("JWT_SECRET", JWT_SECRET), ("TWILIO_AUTH_TOKEN", AUTH_TOKEN), ("TWILIO_SECONDARY_AUTH_TOKEN", SECONDARY_AUTH_TOKEN)]
    {
        out.push((name, value[value.len() - 12..].to_owned()));
    }
    out
}

fn assert_no_secret(what: &str, text: &str, extra: &[(&str, String)]) {
    for (name, value) in secrets().iter().chain(extra) {
        if let Some(at) = text.find(value.as_str()) {
            let start = text[..at].char_indices().rev().nth(200).map_or(0, |(i, _)| i);
            let end = text[at..].char_indices().nth(200).map_or(text.len(), |(i, _)| at + i);
            panic!("{what} contains {name} ({value:?}) at byte {at}:\n…{}…", &text[start..end]);
        }
    }
}

fn start_emulator(dir: &Path, gateway_port: u16) -> (Killed, String) {
    let mut child = Command::new(BIN)
        .arg("emulator")
        .current_dir(dir)
        .env_clear()
        .envs([
            ("EMULATOR_BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("EMULATOR_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
            ("EMULATOR_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
            ("EMULATOR_ENFORCE_WINDOW", "false".to_owned()),
            ("EMULATOR_DELAY_SENT_MS", "20".to_owned()),
            ("EMULATOR_DELAY_DELIVERED_MS", "40".to_owned()),
            ("EMULATOR_DELAY_READ_MS", "60".to_owned()),
            ("EMULATOR_INBOUND_WEBHOOK_URL", format!("http://127.0.0.1:{gateway_port}/api/v1/whatsapp/webhook")),
            ("RUST_LOG", "warn".to_owned()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("twilio-emulator listening on http://"), "unexpected first line: {line:?}");
    assert!(line.contains(ACCOUNT_SID), "{line:?}");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    (Killed(child), url)
}

fn gateway_env(dir: &Path, port: u16, emulator: &str, json_logs: bool) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_URL", format!("sqlite://{}/gateway.db", dir.display())),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("JWT_SECRET", JWT_SECRET.to_owned()),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("TWILIO_SECONDARY_AUTH_TOKEN", SECONDARY_AUTH_TOKEN.to_owned()),
        ("TWILIO_WHATSAPP_FROM", "+14155238886".to_owned()),
        ("TWILIO_API_BASE_URL", emulator.to_owned()),
        ("TWILIO_TIMEOUT_MS", "5000".to_owned()),
        ("WORKER_LEASE_MS", "6000".to_owned()),
        ("RETRY_BASE_MS", "100".to_owned()),
        ("WORKER_POLL_MS", "50".to_owned()),
        ("RUST_LOG", "debug".to_owned()),
        // The recipient never wrote (the emulator's window is off too).
        ("WHATSAPP_WINDOW_CHECK", "false".to_owned()),
    ];
    if json_logs {
        env.push(("LOG_FORMAT", "json".to_owned()));
    }
    env
}

async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read(path: &PathBuf) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// One full cycle against the real binary; returns its captured stdout + stderr and the bearer
/// token it was called with.
async fn full_cycle(json_logs: bool) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("wg-secrets-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (_emulator, emulator_url) = start_emulator(&dir, port);
    let env = gateway_env(&dir, port, &emulator_url, json_logs);

    // `token` prints a bearer token for JWT_SECRET, and nothing secret.
    let minted =
        Command::new(BIN).args(["token", "--sub", "secrets-test"]).current_dir(&dir).env_clear().envs(env.clone()).output().unwrap();
    assert!(minted.status.success(), "token failed: {}", String::from_utf8_lossy(&minted.stderr));
    let token = String::from_utf8(minted.stdout.clone()).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:?}");
    assert_no_secret("`token`'s output", &format!("{}{}", token, String::from_utf8_lossy(&minted.stderr)), &[]);

    let stdout_path = dir.join("stdout.log");
    let stderr_path = dir.join("stderr.log");
    let mut gateway = Killed(
        Command::new(BIN)
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .envs(env)
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until(
        "the gateway to start",
        Duration::from_secs(30),
        async || matches!(http.get(format!("{base}/healthz")).send().await, Ok(r) if r.status() == 200),
    )
    .await;

    // A message, sent for real through the emulator (Basic auth with the token).
    let created = http
        .post(format!("{base}/api/v1/whatsapp/send"))
        .bearer_auth(&token)
        .json(&json!({"to": TO, "body": "secrets test", "reference": "secrets-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 202, "{}", created.text().await.unwrap());
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    // Bad requests: an invalid number, a malformed body.
    let invalid = http
        .post(format!("{base}/api/v1/whatsapp/send"))
        .bearer_auth(&token)
        .json(&json!({"to": "+1415555", "body": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let malformed = http
        .post(format!("{base}/api/v1/whatsapp/send"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"to\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // Bad bearer tokens: garbage, and a well-formed token signed with another secret.
    let garbage = http.get(format!("{base}/api/v1/whatsapp/messages")).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(garbage.status(), 401);
    let foreign = whatsapp_gateway::security::mint_token(&"another-secret-0123456789abcdef".to_owned().into(), "intruder", 600).unwrap();
    let foreign = http.get(format!("{base}/api/v1/whatsapp/messages")).bearer_auth(&foreign).send().await.unwrap();
    assert_eq!(foreign.status(), 401);
    let missing = http.get(format!("{base}/api/v1/whatsapp/messages")).send().await.unwrap();
    assert_eq!(missing.status(), 401);

    // Webhooks: an invalid signature, and a valid one made with the secondary token.
    let status_url = format!("{base}/api/v1/whatsapp/status");
    let params = [("MessageSid", "SM5ec2e75ec2e75ec2e75ec2e75ec2e75e"), ("MessageStatus", "delivered"), ("AccountSid", ACCOUNT_SID)];
    let bad = http.post(&status_url).form(&params).header("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==").send().await.unwrap();
    assert_eq!(bad.status(), 403);
    let unsigned = http.post(&status_url).form(&params).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    let secondary = twilio_signature::compute(SECONDARY_AUTH_TOKEN.as_bytes(), &status_url, &params);
    let rotated = http.post(&status_url).form(&params).header("X-Twilio-Signature", secondary).send().await.unwrap();
    assert_eq!(rotated.status(), 200, "the secondary token is accepted on webhooks");

    // An incoming message, signed by the emulator with the primary token.
    let inbound: Value = http
        .post(format!("{emulator_url}/_emulator/inbound"))
        .json(&json!({"From": "+14155550178", "Body": "hello", "ProfileName": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inbound["status"], 200, "{inbound}");

    // The message reaches `read` through signed status callbacks.
    let mut last = Value::Null;
    wait_until("the message to be read", Duration::from_secs(30), async || {
        last = http
            .get(format!("{base}/api/v1/whatsapp/delivery-status?id={id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        last["status"] == "read"
    })
    .await;

    gateway.0.kill().unwrap();
    gateway.0.wait().unwrap();
    drop(gateway);
    let output = format!("{}{}", read(&stdout_path), read(&stderr_path));
    let _ = std::fs::remove_dir_all(&dir);
    (output, token)
}

fn check_output(output: &str, token: &str, json_logs: bool) {
    // The logs are really there, at debug level, and cover the cycle.
    assert!(output.contains("DEBUG"), "debug logging is on: {}", &output[..output.len().min(2000)]);
    for expected in ["status callback", "invalid Twilio signature", "incoming message"] {
        assert!(output.contains(expected), "the logs mention {expected:?}");
    }
    if json_logs {
        let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
        let json_lines = lines.iter().filter(|l| serde_json::from_str::<Value>(l).is_ok()).count();
        assert!(json_lines * 10 >= lines.len() * 9, "JSON logs: {json_lines} of {} lines parse", lines.len());
    }
    let what = if json_logs { "the JSON logs (RUST_LOG=debug, LOG_FORMAT=json)" } else { "the text logs (RUST_LOG=debug)" };
    assert_no_secret(what, output, &[("the bearer token the API was called with", token.to_owned())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_text_logs_of_a_full_cycle_contain_no_secret() {
    let (output, token) = full_cycle(false).await;
    check_output(&output, &token, false);
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_json_logs_of_a_full_cycle_contain_no_secret() {
    let (output, token) = full_cycle(true).await;
    check_output(&output, &token, true);
}

#[test]
fn config_debug_print_contains_no_secret() {
    let dir = std::env::temp_dir().join(format!("wg-secrets-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secondary-token");
    std::fs::write(&secret_file, format!("{SECONDARY_AUTH_TOKEN}\n")).unwrap();
    let database_url = format!("postgres://gateway:{DATABASE_PASSWORD}@127.0.0.1:5432/gateway");
    let redis_url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0");
    let base: HashMap<String, String> = [
        ("DATABASE_URL", database_url.as_str()),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("JWT_SECRET", JWT_SECRET),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TWILIO_SECONDARY_AUTH_TOKEN", SECONDARY_AUTH_TOKEN),
        ("TWILIO_WHATSAPP_FROM", "+14155238886"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:9"),
        ("REDIS_URL", redis_url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let extra = [("the database password", DATABASE_PASSWORD.to_owned()), ("the Redis password", REDIS_PASSWORD.to_owned())];

    let config = Config::from_vars(&base).expect("the configuration is valid");
    let printed = format!("{config:?}");
    assert!(printed.contains(ACCOUNT_SID), "the print is the real one: {printed}");
    assert_no_secret("Config's Debug print", &printed, &extra);
    assert_no_secret("Config's pretty Debug print", &format!("{config:#?}"), &extra);
    let twilio = config.twilio.as_ref().expect("Twilio credentials are set");
    assert_no_secret("TwilioConfig's Debug print", &format!("{twilio:?}"), &extra);

    // The same secrets given as files.
    let mut from_files = base.clone();
    from_files.remove("TWILIO_SECONDARY_AUTH_TOKEN");
    from_files.insert("TWILIO_SECONDARY_AUTH_TOKEN_FILE".into(), secret_file.display().to_string());
    let config = Config::from_vars(&from_files).expect("the configuration is valid");
    assert_no_secret("Config's Debug print (secrets from files)", &format!("{config:?}"), &extra);

    // A configuration error names the variable, never the value.
    let mut short = base.clone();
    short.insert("JWT_SECRET".into(), "Qz8Wv3Lm5Kp7".into());
    let error = Config::from_vars(&short).unwrap_err();
    assert!(!format!("{error} {error:?}").contains("Qz8Wv3Lm5Kp7"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
