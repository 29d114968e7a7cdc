//! The batched writer against the real databases: many callers' writes share transactions, and a
//! write that fails fails alone while the rest of its batch is committed.

use std::time::Duration;

use sqlx::Connection as _;
use whatsapp_gateway::domain::{NewOutboundMessage, now_ms};
use whatsapp_gateway::store::StoreError;

use crate::helpers::TestApp;
use crate::support::{outbound, sender};

/// Holds the database's write lock from another connection for `hold`, so that writes pile up
/// behind it and form one batch.
async fn block_writes(url: &str, hold: Duration) -> tokio::task::JoinHandle<()> {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
        })
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE").execute(&mut conn).await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_write_fails_alone_and_the_rest_of_its_batch_is_committed() {
    let app = TestApp::spawn().await;
    let store = app.reopen_store().await;
    let later = now_ms() + 3_600_000;
    let taken = NewOutboundMessage { send_at: Some(later), ..outbound("+14155550193") };
    store.insert_outbound(taken.clone(), sender(), now_ms()).await.unwrap();

    let release = block_writes(&app.database_url, Duration::from_millis(400)).await;
    let writes: Vec<_> = (0..100)
        .map(|n| {
            // The 50th reuses a stored message's id: its insert fails on the primary key.
            let message = if n == 50 { taken.clone() } else { NewOutboundMessage { send_at: Some(later), ..outbound("+14155550193") } };
            let store = store.clone();
            tokio::spawn(async move { store.insert_outbound(message, sender(), now_ms()).await })
        })
        .collect();
    release.await.unwrap();
    let mut answers = Vec::new();
    for write in writes {
        answers.push(write.await.unwrap());
    }
    let failed: Vec<usize> = answers.iter().enumerate().filter(|(_, a)| a.is_err()).map(|(n, _)| n).collect();
    assert_eq!(failed, [50], "only the write that reuses an id fails");
    assert!(matches!(&answers[50], Err(StoreError::Conflict { .. })), "as a conflict: {:?}", answers[50]);
    assert!(answers.iter().filter_map(|a| a.as_ref().ok()).all(|(_, created)| *created));
    let (batches, isolations) = store.writer_stats();
    assert!(isolations >= 1, "the failing batch was split ({batches} batches, {isolations} splits)");
    assert!(batches < 60, "the writes shared transactions: {batches} batches for 101 writes");
    assert_eq!(app.messages("?limit=500").await.messages.len(), 100, "99 new messages and the first");
    store.close().await;
    app.finish().await;
}
