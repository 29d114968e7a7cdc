//! Transport and authentication hardening: JWT with public keys and aud/iss, TLS, HTTPS-only,
//! proxies, body limits.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, TestApp, TestOptions, field_errors, fixture, problem};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

async fn status_with(app: &TestApp, token: &str) -> (u16, String) {
    let r = app.http.get(app.url("/api/v1/whatsapp/messages")).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn rs256_public_key_accepts_its_tokens_and_refuses_algorithm_confusion() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![
            ("JWT_PUBLIC_KEY_FILE", fixture("rsa-public.pem")),
            ("JWT_AUDIENCE", "whatsapp-gateway".into()),
            ("JWT_ISSUER", "https://idp.test".into()),
        ],
        ..Default::default()
    })
    .await;
    let private = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap();
    let good = json!({"sub": "app", "exp": now() + 600, "aud": "whatsapp-gateway", "iss": "https://idp.test"});
    assert_eq!(status_with(&app, &sign(Algorithm::RS256, &private, good.clone())).await.0, 200);

    let public_pem = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(&public_pem), good.clone());
    let (status, body) = status_with(&app, &confused).await;
    assert_eq!(status, 401, "HS256 signed with the public key must fail: {body}");
    assert!(body.contains("algorithm"), "{body}");
    let hs = sign(Algorithm::HS256, &EncodingKey::from_secret(JWT_SECRET.as_bytes()), good.clone());
    assert_eq!(status_with(&app, &hs).await.0, 401, "the shared secret no longer works once a public key is configured");

    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let (status, body) = status_with(&app, &sign(Algorithm::RS256, &private, wrong_aud)).await;
    assert_eq!(status, 401);
    assert!(body.contains("audience"), "{body}");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.test");
    let (status, body) = status_with(&app, &sign(Algorithm::RS256, &private, wrong_iss)).await;
    assert_eq!(status, 401);
    assert!(body.contains("issuer"), "{body}");
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(status_with(&app, &sign(Algorithm::RS256, &private, no_aud)).await.0, 401);
    app.finish().await;
}

#[tokio::test]
async fn es256_public_key_accepts_its_tokens() {
    let app =
        TestApp::spawn_with(TestOptions { vars: vec![("JWT_PUBLIC_KEY_FILE", fixture("ec-public.pem"))], ..Default::default() }).await;
    let private = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap();
    let token = sign(Algorithm::ES256, &private, json!({"sub": "app", "exp": now() + 600}));
    assert_eq!(status_with(&app, &token).await.0, 200);
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap();
    assert_eq!(status_with(&app, &sign(Algorithm::RS256, &rsa, json!({"sub": "app", "exp": now() + 600}))).await.0, 401);
    app.finish().await;
}

#[tokio::test]
async fn tls_serves_https_with_hsts() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("TLS_CERT_FILE", fixture("tls-cert.pem")), ("TLS_KEY_FILE", fixture("tls-key.pem")), ("REQUIRE_HTTPS", "true".into())],
        ..Default::default()
    })
    .await;
    assert!(app.base_url.starts_with("https://"));
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
    // A plain-HTTP client talking to the TLS port gets no answer it can read.
    let plain = app.base_url.replace("https://", "http://");
    let answer = reqwest::get(format!("{plain}/healthz")).await;
    assert!(answer.is_err() || !answer.unwrap().status().is_success());
    app.finish().await;
}

#[tokio::test]
async fn require_https_refuses_plain_http_unless_a_trusted_proxy_says_https() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("REQUIRE_HTTPS", "true".into())], ..Default::default() }).await;
    let url = app.url("/api/v1/whatsapp/messages");
    let refused = app.http.get(&url).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let spoofed = app.http.get(&url).bearer_auth(&app.token).header("x-forwarded-proto", "https").send().await.unwrap();
    assert_eq!(spoofed.status(), 403, "X-Forwarded-Proto is not believed without TRUST_PROXY");
    // The kubelet's probes and Prometheus's scrape come over plain HTTP to the pod itself.
    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.http.get(app.url(probe)).send().await.unwrap().status(), 200, "{probe} over plain HTTP");
    }

    let behind_proxy = TestApp::spawn_with(TestOptions {
        vars: vec![("REQUIRE_HTTPS", "true".into()), ("TRUST_PROXY", "true".into())],
        ..Default::default()
    })
    .await;
    let ok = behind_proxy
        .http
        .get(behind_proxy.url("/api/v1/whatsapp/messages"))
        .bearer_auth(&behind_proxy.token)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("strict-transport-security"));
    app.finish().await;
    behind_proxy.finish().await;
}

#[tokio::test]
async fn signature_checks_the_forwarded_url_only_behind_a_trusted_proxy() {
    let params: Vec<(String, String)> = [("MessageSid", "SM0123456789abcdef0123456789abcdef"), ("MessageStatus", "sent")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for trust in [false, true] {
        let app = TestApp::spawn_with(TestOptions { vars: vec![("TRUST_PROXY", trust.to_string())], ..Default::default() }).await;
        let public = "https://hooks.example.com/api/v1/whatsapp/status?x=1";
        let signature = twilio_signature::compute(app.emulator.auth_token().as_bytes(), public, &params);
        let response = app
            .http
            .post(app.url("/api/v1/whatsapp/status?x=1"))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "hooks.example.com")
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), if trust { 200 } else { 403 }, "trust_proxy={trust}");
        app.finish().await;
    }
}

#[tokio::test]
async fn oversize_bodies_are_413_problems() {
    let app = TestApp::spawn().await;
    let body = json!({"to": "+14155550100", "body": "x".repeat(70 * 1024)});
    let response = app.send(body).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let big_form = format!("MessageSid=SM0123456789abcdef0123456789abcdef&Body={}", "y".repeat(70 * 1024));
    let response = app
        .http
        .post(app.url("/api/v1/whatsapp/webhook"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", "x")
        .body(big_form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let media = json!({"to": "+14155550100", "media_urls": (0..11).map(|i| format!("https://x.test/{i}.png")).collect::<Vec<_>>()});
    let (status, body) = problem(app.send(media).await).await;
    assert_eq!(status, 422);
    assert_eq!(field_errors(&body)[0].0, "media_urls");
    app.finish().await;
}

/// A request to one operation of the OpenAPI document that passes everything but authorization
/// (path and query filled in, a valid body for a POST).
fn operation_request(app: &TestApp, method: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
    let concrete = path
        .replace("{id}", &uuid::Uuid::new_v4().to_string())
        .replace("{event_id}", &format!("evt_{}", uuid::Uuid::new_v4().simple()))
        .replace("{endpoint_id}", "ep_x")
        .replace("{phone}", "+14155550123");
    let url = app.url(&concrete);
    match method {
        "get" if path.ends_with("/delivery-status") => app.http.get(format!("{url}?id={}", uuid::Uuid::new_v4())),
        "get" => app.http.get(url),
        "post" => {
            let message = json!({"to": "+14155550123", "content_sid": "HX0123456789abcdef0123456789abcdef"});
            app.http.post(url).json(&if path.ends_with("/batch") { json!({"messages": [message]}) } else { message })
        }
        "patch" => app.http.patch(url).json(&json!({})),
        other => panic!("no request for {other} {path}"),
    }
    .bearer_auth(token)
}

#[tokio::test]
async fn every_operation_requires_the_scope_it_documents_and_a_token_without_the_claim_keeps_full_access() {
    use whatsapp_gateway::security::{Scope, mint_scoped_token, mint_token};
    let app = TestApp::spawn().await;
    let secret: secrecy::SecretString = JWT_SECRET.to_owned().into();
    let document = whatsapp_gateway::http::openapi::document();
    let mut checked = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let Some(required) = operation["security"].as_array().and_then(|s| s.iter().find_map(|r| r.get("bearer"))) else { continue };
            let required: Vec<Scope> = required.as_array().unwrap().iter().map(|s| s.as_str().unwrap().parse().unwrap()).collect();
            assert_eq!(required.len(), 1, "{method} {path} names exactly one scope");
            let scope = required[0];
            assert!(operation["responses"].get("403").is_some(), "{method} {path} documents its 403");

            let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope && *s != Scope::Admin).collect();
            let lacking = mint_scoped_token(&secret, "scoped", 600, Some(&others)).unwrap();
            let refused = operation_request(&app, method, path, &lacking).send().await.unwrap();
            let challenge = refused.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            let (status, body) = problem(refused).await;
            assert_eq!(status, 403, "{method} {path} without {scope}: {body:?}");
            assert_eq!(body.kind, "https://whatsapp-gateway.dev/problems/insufficient-scope");
            assert!(body.detail.contains(&format!("`{scope}`")), "the problem names the scope: {body:?}");
            assert!(challenge.contains("insufficient_scope") && challenge.contains(&format!("scope=\"{scope}\"")), "{challenge}");

            for token in [
                mint_scoped_token(&secret, "scoped", 600, Some(&[scope])).unwrap(),
                mint_scoped_token(&secret, "scoped", 600, Some(&[Scope::Admin])).unwrap(),
                mint_token(&secret, "unscoped", 600).unwrap(),
            ] {
                let status = operation_request(&app, method, path, &token).send().await.unwrap().status().as_u16();
                assert!(status != 401 && status != 403, "{method} {path} with {scope}, admin or no claim: {status}");
            }
            checked.push(format!("{method} {path} {scope}"));
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "get /api/v1/events events:manage",
            "get /api/v1/events/endpoints events:manage",
            "get /api/v1/events/endpoints/{endpoint_id} events:manage",
            "get /api/v1/events/endpoints/{endpoint_id}/attempts events:manage",
            "get /api/v1/events/endpoints/{endpoint_id}/secret events:manage",
            "get /api/v1/events/{event_id} events:manage",
            "get /api/v1/whatsapp/delivery-metrics metrics:read",
            "get /api/v1/whatsapp/delivery-status messages:read",
            "get /api/v1/whatsapp/messages messages:read",
            "get /api/v1/whatsapp/messages/{id} messages:read",
            "get /api/v1/whatsapp/phones/{phone}/performance metrics:read",
            "get /api/v1/whatsapp/senders metrics:read",
            "patch /api/v1/events/endpoints/{endpoint_id} events:manage",
            "post /api/v1/events/endpoints events:manage",
            "post /api/v1/events/endpoints/{endpoint_id}/redrive events:manage",
            "post /api/v1/events/endpoints/{endpoint_id}/rotate-secret events:manage",
            "post /api/v1/events/{event_id}/redrive events:manage",
            "post /api/v1/whatsapp/messages/retry messages:send",
            "post /api/v1/whatsapp/messages/{id}/cancel messages:send",
            "post /api/v1/whatsapp/messages/{id}/retry messages:send",
            "post /api/v1/whatsapp/messages/{id}/typing messages:send",
            "post /api/v1/whatsapp/send messages:send",
            "post /api/v1/whatsapp/send/batch messages:send",
        ],
        "every bearer operation was checked"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_read_only_token_reads_what_the_dashboard_shows_and_cannot_send() {
    use whatsapp_gateway::security::{Scope, mint_scoped_token};
    let app = TestApp::spawn().await;
    let read_only =
        mint_scoped_token(&JWT_SECRET.to_owned().into(), "dashboard", 600, Some(&[Scope::MessagesRead, Scope::MetricsRead])).unwrap();
    for path in
        ["/api/v1/whatsapp/delivery-metrics", "/api/v1/whatsapp/messages?limit=5", "/api/v1/whatsapp/phones/+14155550123/performance"]
    {
        let r = app.http.get(app.url(path)).bearer_auth(&read_only).send().await.unwrap();
        // A phone never sent to is a 404: authorised, nothing to show.
        let expected = if path.contains("/phones/") { 404 } else { 200 };
        assert_eq!(r.status(), expected, "{path}");
    }
    let send = app
        .http
        .post(app.url("/api/v1/whatsapp/send"))
        .bearer_auth(&read_only)
        .json(&json!({"to": "+14155550123", "body": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 403);
    assert_eq!(app.emulator.counters().created_to("+14155550123"), 0, "nothing sent");
    app.finish().await;
}

#[test]
fn token_scope_refuses_unknown_names_and_mints_what_it_was_asked() {
    let binary = env!("CARGO_BIN_EXE_whatsapp-gateway");
    let data = tempfile_dir();
    let run = |args: &[&str]| {
        std::process::Command::new(binary)
            .args(args)
            .env("JWT_SECRET", JWT_SECRET)
            .env("DATA_DIR", &data)
            .current_dir(&data)
            .output()
            .unwrap()
    };
    let typo = run(&["token", "--scope", "messages:write"]);
    assert!(!typo.status.success());
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("unknown scope \"messages:write\""),
        "{}",
        String::from_utf8_lossy(&typo.stderr)
    );
    let minted = run(&["token", "--sub", "dash", "--scope", "messages:read,metrics:read"]);
    assert!(minted.status.success(), "{}", String::from_utf8_lossy(&minted.stderr));
    let token = String::from_utf8(minted.stdout).unwrap();
    let keys = whatsapp_gateway::security::JwtKeys::hs256(&JWT_SECRET.to_owned().into());
    let claims = keys.verify(token.trim()).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    assert_eq!((claims.sub.as_str(), claims.scope.as_deref()), ("dash", Some("messages:read metrics:read")));
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wg-token-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
