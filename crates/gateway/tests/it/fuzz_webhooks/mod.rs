//! Random requests to both webhook endpoints of the running application (in process, SQLite or
//! whatever `WG_TEST_BACKEND` selects, the built-in emulator's token signing): random raw bodies,
//! content types, query strings and `X-Twilio-Signature` values, as random bytes and as random
//! (mostly well-formed) strings. Every answer must be one of 200/400/403/413/415/422, the server
//! must keep answering `/healthz`, and nothing may be stored unless the request carries a
//! signature that Twilio's rules accept (checked with `twilio_signature::validate` over the URL
//! actually sent). A well-signed form or JSON webhook must not be refused with 403.
//!
//! The proptest seed is fixed (`PROPTEST_RNG_SEED` overrides it) and printed on failure along with
//! the shrunk case.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use twilio_signature::{Payload, compute, hex_sha256, validate};

use crate::helpers::{TestApp, TestOptions};

mod cases;
use cases::{Body, Case, Signature, byte_case, string_case};

const DEFAULT_SEED: u64 = 0x6675_7a7a_7765_6268; // fixed: the same cases on every run
const CASES: u32 = 384;
const STATUS_PATH: &str = "/api/v1/whatsapp/status";
const INBOUND_PATH: &str = "/api/v1/whatsapp/webhook";
const ALLOWED: [u16; 6] = [200, 400, 403, 413, 415, 422];
const FORM: &str = "application/x-www-form-urlencoded";

fn seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(seed()),
        failure_persistence: None,
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        ..Config::default()
    })
}

fn body_bytes(body: &Body) -> Vec<u8> {
    match body {
        Body::Raw(bytes) => bytes.clone(),
        Body::Form(params) => form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish().into_bytes(),
        Body::Json(map) => serde_json::to_vec(map).unwrap(),
        Body::Large(n) => {
            let mut body = b"MessageSid=SM0123456789abcdef0123456789abcdef&Body=".to_vec();
            body.resize(*n, b'a');
            body
        }
    }
}

/// Whether Twilio's rules accept `signature` for this request: over the form parameters, or (a
/// non-form body) over the URL with a matching `bodySHA256`.
fn acceptable(token: &[u8], url: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(signature) = signature else { return false };
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    validate(token, url, Payload::Form(&params), signature) || validate::<&str, &str>(token, url, Payload::Body(body), signature)
}

/// A pool of the test's own on the app's database: the test looks at the rows, not through the
/// gateway.
enum Peek {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Peek {
    async fn open(app: &TestApp) -> Self {
        if app.database_url.starts_with("sqlite:") {
            Self::Sqlite(sqlx::SqlitePool::connect(&app.database_url).await.unwrap())
        } else {
            Self::Postgres(sqlx::PgPool::connect(&app.database_url).await.unwrap())
        }
    }

    /// Rows per table, and the newest change times: any stored effect moves it.
    async fn snapshot(&self) -> BTreeMap<String, i64> {
        const SQLITE_TABLES: &str =
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'";
        const PG_TABLES: &str = "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'";
        const LATEST: [(&str, &str); 2] = [
            ("max(contacts.updated_at)", "SELECT COALESCE(MAX(updated_at), 0) FROM contacts"),
            ("max(messages.last_status_at)", "SELECT COALESCE(MAX(last_status_at), 0) FROM messages"),
        ];
        macro_rules! read {
            ($pool:expr, $tables:expr) => {{
                let tables: Vec<String> = sqlx::query_scalar($tables).fetch_all($pool).await.unwrap();
                let mut out = BTreeMap::new();
                for table in tables {
                    let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
                    out.insert(table, sqlx::query_scalar::<_, i64>(sql).fetch_one($pool).await.unwrap());
                }
                for (name, sql) in LATEST {
                    out.insert(name.to_owned(), sqlx::query_scalar::<_, i64>(sql).fetch_one($pool).await.unwrap());
                }
                out
            }};
        }
        match self {
            Self::Sqlite(pool) => read!(pool, SQLITE_TABLES),
            Self::Postgres(pool) => read!(pool, PG_TABLES),
        }
    }
}

struct Outcome {
    status: u16,
    stored: bool,
    acceptable: bool,
    canonical_valid: bool,
}

/// Sends one case and checks it.
async fn run_case(app: &TestApp, peek: &Peek, case: &Case) -> Result<Outcome, TestCaseError> {
    let token = app.emulator.auth_token().as_bytes().to_vec();
    let path = if case.inbound { INBOUND_PATH } else { STATUS_PATH };
    let body = body_bytes(&case.body);
    let is_json = matches!(case.body, Body::Json(_));
    let mut query = case.query.clone();
    if is_json && matches!(case.signature, Signature::Valid) {
        let sha = format!("bodySHA256={}", hex_sha256(&body));
        query = Some(match query {
            Some(q) if !q.is_empty() => format!("{q}&{sha}"),
            _ => sha,
        });
    }
    let mut url = reqwest::Url::parse(&app.url(path)).unwrap();
    url.set_query(query.as_deref());
    // The URL exactly as sent: what Twilio would have signed.
    let sent_url = url.as_str().to_owned();
    let content_type = case.content_type.as_ref().and_then(|ct| HeaderValue::from_bytes(ct).ok());
    let is_form = content_type.as_ref().is_some_and(|ct| ct.as_bytes().to_ascii_lowercase().starts_with(FORM.as_bytes()));
    let form_params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let no_params: &[(&str, &str)] = &[];
    let sign_with = |token: &[u8], url: &str| {
        if is_json && !is_form { compute(token, url, no_params) } else { compute(token, url, &form_params) }
    };
    let signature: Option<HeaderValue> = match &case.signature {
        Signature::Missing => None,
        Signature::Text(text) => HeaderValue::from_str(text).ok(),
        Signature::Bytes(bytes) => HeaderValue::from_bytes(bytes).ok(),
        Signature::Valid => HeaderValue::from_str(&sign_with(&token, &sent_url)).ok(),
        Signature::ValidOtherToken => HeaderValue::from_str(&sign_with(b"another-auth-token", &sent_url)).ok(),
        Signature::ValidOtherPath => {
            let other = sent_url.replacen(path, if case.inbound { STATUS_PATH } else { INBOUND_PATH }, 1);
            HeaderValue::from_str(&sign_with(&token, &other)).ok()
        }
    };
    let acceptable = acceptable(&token, &sent_url, &body, signature.as_ref().and_then(|s| s.to_str().ok()));
    // Well-formed, correctly signed webhooks as Twilio sends them.
    let canonical_valid = matches!(case.signature, Signature::Valid)
        && !case.query.as_deref().unwrap_or_default().contains("bodySHA256")
        && ((is_form && matches!(case.body, Body::Form(_)))
            || (is_json && content_type.as_ref().is_some_and(|c| c.as_bytes().starts_with(b"application/json"))));

    let before = peek.snapshot().await;
    let mut request = app.http.post(url).body(body.clone());
    if let Some(ct) = content_type {
        request = request.header(CONTENT_TYPE, ct);
    }
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    let response = request.send().await.map_err(|e| TestCaseError::fail(format!("no answer (the server died?): {e}")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let after = peek.snapshot().await;

    prop_assert!(ALLOWED.contains(&status), "answered {} to {:?} at {}: {}", status, case, sent_url, text);
    if !acceptable {
        prop_assert!(
            [400, 403, 413, 415].contains(&status),
            "a request without an acceptable signature was answered {}: {} (url {}, case {:?})",
            status,
            text,
            sent_url,
            case
        );
        prop_assert_eq!(&before, &after, "stored something without a valid signature: url {}, case {:?}", sent_url, case);
    }
    if canonical_valid {
        prop_assert!(status != 403, "a correctly signed webhook was refused: {} (url {}, case {:?})", text, sent_url, case);
    }
    Ok(Outcome { status, stored: before != after, acceptable, canonical_valid })
}

fn fuzz(name: &str, strategy: impl Strategy<Value = Case>) -> BTreeMap<String, u32> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = rt.block_on(TestApp::spawn_with(TestOptions {
        // Every request comes from one address: keep any per-client webhook limit out of the way.
        vars: vec![
            ("RATE_LIMIT_WEBHOOK_PER_MIN", "1000000".to_owned()),
            ("RATE_LIMIT_API_PER_MIN", "1000000".to_owned()),
            ("RATE_LIMIT_BURST", "100000".to_owned()),
        ],
        ..Default::default()
    }));
    let peek = rt.block_on(Peek::open(&app));
    let tally = std::sync::Mutex::new(BTreeMap::<String, u32>::new());
    let mut runner = runner();
    let result = runner.run(&strategy, |case| {
        let outcome = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), run_case(&app, &peek, &case)).await })
            .map_err(|_| TestCaseError::fail(format!("no answer within 20 s to {case:?}")))??;
        let key = format!(
            "{}{} {}",
            outcome.status,
            if outcome.stored { " stored" } else { "" },
            if outcome.canonical_valid {
                "valid"
            } else if outcome.acceptable {
                "acceptable"
            } else {
                "unsigned/invalid"
            }
        );
        *tally.lock().unwrap().entry(key).or_default() += 1;
        Ok(())
    });
    eprintln!("{name}: seed {} ({CASES} cases), answers: {:?}", seed(), tally.lock().unwrap());
    if let Err(e) = result {
        panic!("{name} (PROPTEST_RNG_SEED={}): {e}", seed());
    }
    rt.block_on(async {
        let health = app.http.get(app.url("/healthz")).send().await.expect("the server still answers");
        assert_eq!(health.status(), 200, "/healthz after the fuzzing");
        // And it still does its job: a correctly signed status callback goes through.
        let params = [("MessageSid", "SMffffffffffffffffffffffffffffffff"), ("MessageStatus", "delivered")];
        let url = app.url(STATUS_PATH);
        let signature = compute(app.emulator.auth_token().as_bytes(), &url, &params);
        let ok = app.http.post(&url).form(&params).header("X-Twilio-Signature", signature).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    });
    rt.block_on(app.finish());
    rt.shutdown_timeout(Duration::from_secs(5));
    tally.into_inner().unwrap()
}

#[test]
fn random_bytes_to_the_webhooks_never_crash_or_store_unsigned() {
    let tally = fuzz("random bytes", byte_case());
    assert!(tally.keys().any(|k| k.starts_with("403")), "some cases were refused: {tally:?}");
}

#[test]
fn random_strings_to_the_webhooks_never_crash_or_store_unsigned() {
    let tally = fuzz("random strings", string_case());
    assert!(tally.keys().any(|k| k.starts_with("403")), "some cases were refused: {tally:?}");
    assert!(tally.contains_key("200 stored valid"), "some correctly signed cases were accepted and stored: {tally:?}");
}
