//! `ingest`: signed status callbacks for seeded messages, reordered and duplicated.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::{IngestArgs, Tally, base, http_client, per_second, round3};

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

/// Posts the prepared callbacks from `--concurrency` tasks and reports their rate and latencies.
pub(crate) async fn ingest(args: IngestArgs) -> anyhow::Result<Value> {
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
    let mut tally = Tally::gather(tasks, limit, "the callback tasks").await?;
    let elapsed = started.elapsed();
    let latency = tally.latency_ms();
    let report = json!({
        "ok": tally.refusals() == 0,
        "command": "ingest",
        "messages": args.messages,
        "concurrency": args.concurrency,
        "callbacks": order.len(),
        "originals": callbacks.len(),
        "duplicates": duplicates,
        "reordered_messages": reordered,
        "answered_200": tally.latencies_us.len(),
        "refused": tally.refused,
        "first_refusal": tally.first_error,
        "callbacks_per_s": per_second(order.len(), elapsed),
        "p50_ms": latency.p50,
        "p99_ms": latency.p99,
        "max_ms": latency.max,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_matches_what_twilio_sends() {
        assert_eq!(form_encode(&[("To", "whatsapp:+14155550001"), ("Body", "a b&c")]), "To=whatsapp%3A%2B14155550001&Body=a+b%26c");
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
