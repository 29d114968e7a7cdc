//! `RedisQueue` when its Redis server goes away: a private `redis-server`, stopped and started
//! again under a running queue.

use std::time::Duration;

use whatsapp_gateway::domain::now_ms;
use whatsapp_gateway::queue::{Job, JobQueue};

use super::{LONG_LEASE, queue_on, store_in};
use crate::support::{outbound, sender};

/// A private `redis-server` on a free port, killed on drop (the shared server is never restarted).
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start_on(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH for this test");
        Self { port, child }
    }

    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on(port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn the_queue_reconnects_by_itself_after_redis_restarts_and_starts_empty() {
    let dir = std::env::temp_dir().join(format!("wg-queue-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = store_in(&dir).await;
    let body = async {
        let mut server = PrivateRedis::start();
        let url = format!("redis://127.0.0.1:{}", server.port);
        let queue = loop {
            match queue_on(&url, "restart", &store).await {
                Ok(queue) => break queue,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (first, _) = store.insert_outbound(outbound("+14155550151"), sender(), now_ms()).await.unwrap();
        queue.enqueue(Job { message_id: first.id, priority: first.priority, run_at: now_ms() }).await.unwrap();
        queue.flush().await;
        assert_eq!(queue.depth().await.unwrap(), 1);

        server.stop();
        assert!(queue.depth().await.is_err(), "a stopped server answers with an error, not a hang");
        let _server = PrivateRedis::start_on(server.port);
        let depth = loop {
            match queue.depth().await {
                Ok(depth) => break depth,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert_eq!(depth, 0, "the restarted server holds nothing; the sweeper re-queues from the database");
        queue.enqueue(Job { message_id: first.id, priority: first.priority, run_at: now_ms() }).await.unwrap();
        queue.flush().await;
        let claims = queue.claim("w", 10, LONG_LEASE).await.unwrap();
        assert_eq!(claims.iter().map(|c| c.message.id).collect::<Vec<_>>(), [first.id], "scripts are loaded again after the restart");
    };
    tokio::time::timeout(Duration::from_secs(60), body).await.expect("test took over 60 s");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
