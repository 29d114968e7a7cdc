//! TLS to the backends is honoured: PostgreSQL's `sslmode` in `DATABASE_URL`, and `rediss://`
//! (a private TLS redis-server on a free loopback port, trusted through `SSL_CERT_FILE`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use whatsapp_gateway::store::{Store, StoreOptions};

use crate::helpers::backend::PG_ADMIN_URL;
use crate::helpers::fixture;
use crate::helpers::process::{BIN, Killed, free_port};

/// Whether the store's connections, opened with `url`, are encrypted (as PostgreSQL sees them).
async fn connection_is_encrypted(url: &str) -> bool {
    let name = format!("wg_ssl_{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(&format!("{url}&application_name={name}"), &StoreOptions::default()).await.expect("connects");
    store.ping().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.unwrap();
    let ssl: Vec<bool> =
        sqlx::query_scalar("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1")
            .bind(&name)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    store.close().await;
    assert!(!ssl.is_empty(), "the store's connection is seen");
    ssl.into_iter().all(|s| s)
}

#[tokio::test]
async fn postgres_sslmode_in_the_url_is_honoured() {
    assert!(connection_is_encrypted("postgres://postgres@127.0.0.1:5432/postgres?sslmode=require").await);
    assert!(!connection_is_encrypted("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable").await);
}

fn start_tls_redis(port: u16) -> Killed {
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--tls-cert-file",
            &fixture("tls-cert.pem"),
            "--tls-key-file",
            &fixture("tls-key.pem"),
            "--tls-ca-cert-file",
            &fixture("tls-ca.pem"),
        ])
        .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    Killed(child)
}

fn start_gateway(dir: &std::path::Path, port: u16, redis_port: u16, trust_ca: bool) -> Killed {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .current_dir(dir)
        .env("DATABASE_URL", format!("sqlite://{}/g.db", dir.display()))
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", "transport-test-secret-0123456789")
        .env("REDIS_URL", format!("rediss://localhost:{redis_port}"))
        .env("REDIS_KEY_PREFIX", "tls-test")
        .env_remove("SSL_CERT_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if trust_ca {
        command.env("SSL_CERT_FILE", fixture("tls-ca.pem"));
    }
    Killed(command.spawn().unwrap())
}

#[tokio::test]
async fn rediss_url_connects_over_tls_and_verifies_the_server() {
    let dir = std::env::temp_dir().join(format!("wg-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis_port = free_port();
    let _redis = start_tls_redis(redis_port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();

    let port = free_port();
    let _gateway = start_gateway(&dir, port, redis_port, true);
    let start = Instant::now();
    let ready = loop {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            break r.json::<serde_json::Value>().await.unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the gateway did not start with rediss://");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (ready["status"].as_str(), ready["queue"].as_str(), ready["shared_state"].as_str()),
        (Some("ready"), Some("ok"), Some("ok")),
        "{ready}"
    );

    // Without the CA, the server's certificate is not trusted: the gateway refuses to start.
    let untrusted_port = free_port();
    let mut untrusted = start_gateway(&dir, untrusted_port, redis_port, false);
    let exit = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        loop {
            if let Some(status) = untrusted.0.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > Duration::from_secs(20) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(exit.is_some_and(|s| !s.success()), "an untrusted Redis certificate must stop the start: {exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
