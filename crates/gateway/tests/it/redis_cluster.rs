//! `RedisQueue` and `RedisState` against a private Redis Cluster: three masters started by the
//! test on free loopback ports (`redis-server`, `redis-cli --cluster create`), in a temporary
//! directory; the processes are killed and the directory removed when the test ends. Needs
//! `redis-server` and `redis-cli` (7.x) on `PATH`; if the cluster cannot be formed the test fails
//! with the reason (it never skips).

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use whatsapp_gateway::domain::{MessageId, NewOutboundMessage, Priority, now_ms};
use whatsapp_gateway::queue::{Job, JobQueue, RedisQueue};
use whatsapp_gateway::shared::{IdempotencyState, RateLimit, RedisConnection, RedisState, SharedState};
use whatsapp_gateway::store::{Store, StoreOptions};

use crate::support::{outbound, sender};

const LONG_LEASE: Duration = Duration::from_secs(60);
/// The longest one `redis-cli` call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest the cluster may take to start and report `cluster_state:ok`.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// A private three-master cluster; dropping it kills the servers and removes their directory.
struct Cluster {
    ports: Vec<u16>,
    dir: PathBuf,
    servers: Vec<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("wg-redis-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the cluster's temp dir");
        let mut cluster = Self { ports: free_ports(3), dir, servers: Vec::new() };
        for port in cluster.ports.clone() {
            let log = File::create(cluster.dir.join(format!("redis-{port}.log"))).expect("create a server log");
            let server = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf"), "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot form a Redis Cluster: redis-server does not start ({e}); is it installed?"));
            cluster.servers.push(server);
        }
        for port in cluster.ports.clone() {
            cluster.wait_until(&format!("redis-server on port {port} answers PING"), || {
                cli(&["-p", &port.to_string(), "ping"]).is_some_and(|out| out.trim() == "PONG")
            });
        }
        let nodes: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let created = run("redis-cli", &args, CLI_TIMEOUT);
        assert!(
            created.status.success(),
            "cannot form a Redis Cluster: redis-cli --cluster create failed:\n{}{}\n{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr),
            cluster.logs()
        );
        for port in cluster.ports.clone() {
            cluster.wait_until(&format!("node {port} reports cluster_state:ok"), || {
                cli(&["-p", &port.to_string(), "cluster", "info"]).is_some_and(|out| out.lines().any(|l| l.trim() == "cluster_state:ok"))
            });
        }
        cluster
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// Polls `ready` every 100 ms for up to [`FORM_TIMEOUT`]; fails with the server logs otherwise.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        while !ready() {
            for (server, port) in self.servers.iter_mut().zip(&self.ports) {
                if let Ok(Some(status)) = server.try_wait() {
                    panic!("cannot form a Redis Cluster: redis-server on port {port} exited ({status})\n{}", self.logs());
                }
            }
            assert!(Instant::now() < deadline, "cannot form a Redis Cluster: no {what} after {FORM_TIMEOUT:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self) -> String {
        self.ports
            .iter()
            .map(|p| {
                format!("--- redis-{p}.log ---\n{}", std::fs::read_to_string(self.dir.join(format!("redis-{p}.log"))).unwrap_or_default())
            })
            .collect()
    }

    /// A plain connection to one node (no cluster routing), for inspection.
    async fn node(&self, port: u16) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
            .await
            .expect("connect to a node in time")
            .expect("connect to a node")
    }

    /// How many keys matching `pattern` each node holds.
    async fn keys_per_node(&self, pattern: &str) -> Vec<usize> {
        let mut counts = Vec::new();
        for &port in &self.ports {
            let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut self.node(port).await).await.unwrap();
            counts.push(keys.len());
        }
        counts
    }

    /// Drops every cached script on every node, so the next `EVALSHA` answers `NOSCRIPT`.
    async fn flush_scripts(&self) {
        for &port in &self.ports {
            let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut self.node(port).await).await.unwrap();
        }
    }
}

/// `count` distinct loopback ports free now, each with its cluster bus port (+10000) free too.
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < 55_000 && !ports.contains(&port) && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            ports.push(port);
            if ports.len() == count {
                return ports;
            }
        }
    }
    panic!("cannot form a Redis Cluster: no {count} free loopback port pairs found");
}

/// Runs a program to completion, killing it after `limit`.
fn run(program: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot form a Redis Cluster: {program} does not start ({e}); is it installed?"));
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cannot form a Redis Cluster: {program} {args:?} took over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

/// `redis-cli` with `args`: its stdout if it succeeded.
fn cli(args: &[&str]) -> Option<String> {
    let out = run("redis-cli", args, Duration::from_secs(5));
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A store in a fresh SQLite file, for the queue to claim in.
async fn store_in(dir: &std::path::Path) -> Store {
    let store = Store::connect(&format!("sqlite://{}/q.db", dir.display()), &StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn message(store: &Store, priority: i64, offset_ms: i64) -> Job {
    let now = now_ms();
    let message = NewOutboundMessage {
        priority: Priority::new(priority).unwrap(),
        send_at: (offset_ms > 0).then_some(now + offset_ms),
        ..outbound("+14155550152")
    };
    let (stored, _) = store.insert_outbound(message, sender(), now + offset_ms.min(0)).await.unwrap();
    Job { message_id: stored.id, priority: stored.priority, run_at: stored.next_attempt_at.unwrap() }
}

async fn claim(queue: &RedisQueue, limit: usize) -> Vec<MessageId> {
    let claims = queue.claim("w", limit, LONG_LEASE).await.unwrap();
    queue.flush().await;
    claims.into_iter().map(|c| c.message.id).collect()
}

async fn check_queue(queue: &RedisQueue, store: &Store) {
    let low_old = message(store, 10, -5_000).await;
    let normal = message(store, 5, -3_000).await;
    let high_newer = message(store, 1, -1_000).await;
    let high_older = message(store, 1, -2_000).await;
    for j in [&low_old, &normal, &high_newer, &high_older] {
        queue.enqueue(j.clone()).await.unwrap();
    }
    queue.flush().await;
    assert_eq!(queue.depth().await.unwrap(), 4);
    assert_eq!(
        claim(queue, 10).await,
        [high_older.message_id, high_newer.message_id, normal.message_id, low_old.message_id],
        "claims by priority, then due time"
    );
    for j in [&high_older, &high_newer, &normal] {
        queue.complete(j.message_id).await.unwrap();
    }
    queue.flush().await;
    assert_eq!(queue.depth().await.unwrap(), 1);
    // Rescheduled into the future, a job is not due.
    store.release(low_old.message_id, "w", None).await.unwrap();
    queue.reschedule(low_old.message_id, low_old.priority, now_ms() + 60_000).await.unwrap();
    queue.flush().await;
    assert!(claim(queue, 10).await.is_empty(), "a job rescheduled later is not due");
    assert_eq!(queue.depth().await.unwrap(), 1);
    queue.complete(low_old.message_id).await.unwrap();
    queue.flush().await;
    assert_eq!(queue.depth().await.unwrap(), 0);
}

async fn check_state(state: &RedisState, round: &str, keys: usize) {
    state.ping().await.unwrap();
    let ttl = Duration::from_secs(60);
    let limit = RateLimit { per_period: 2, period: Duration::from_secs(60), burst: 0 };
    for i in 0..keys {
        let key = format!("{round}-{i}");
        let slots = state.reserve(&key, Duration::from_millis(10), 3, Duration::from_millis(30)).await.unwrap();
        assert_eq!(slots.granted, 3, "pacing slots for {key}");
        assert_eq!(state.reserve(&key, Duration::from_millis(10), 3, Duration::from_millis(30)).await.unwrap().granted, 0);

        assert_eq!(state.idempotency_begin(&key, "fp", ttl).await.unwrap(), IdempotencyState::New);
        assert_eq!(state.idempotency_begin(&key, "fp", ttl).await.unwrap(), IdempotencyState::InFlight);
        state.idempotency_complete(&key, "fp", 201, key.as_bytes(), ttl).await.unwrap();
        assert_eq!(
            state.idempotency_begin(&key, "other", ttl).await.unwrap(),
            IdempotencyState::Completed { fingerprint: "fp".into(), status: 201, body: key.clone().into_bytes() }
        );
        state.idempotency_abandon(&key).await.unwrap();
        assert!(matches!(state.idempotency_begin(&key, "fp", ttl).await.unwrap(), IdempotencyState::Completed { .. }));

        let decisions = [
            state.rate_limit(&key, limit, 1).await.unwrap(),
            state.rate_limit(&key, limit, 1).await.unwrap(),
            state.rate_limit(&key, limit, 1).await.unwrap(),
        ];
        assert_eq!(decisions.map(|d| d.allowed), [true, true, false], "2 per minute for {key}");
        assert_eq!(decisions[1].remaining, 0);
        assert!(decisions[2].retry_after > Duration::ZERO);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_shared_state_work_on_a_redis_cluster() {
    let cluster = Cluster::start();
    tokio::time::timeout(Duration::from_secs(120), async {
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let store = store_in(&cluster.dir).await;
        let conn = RedisConnection::connect(&cluster.url(), true).await.expect("connect to the cluster");
        let queue = RedisQueue::new(conn.clone(), &prefix, store.clone(), &cluster.url()).unwrap();
        let state = RedisState::new(conn, &prefix).unwrap();

        check_queue(&queue, &store).await;
        check_state(&state, "a", 40).await;

        // The queue's keys share one hash tag, so they live on one node; the state's keys are spread.
        let job = message(&store, 3, 60_000).await;
        queue.enqueue(job.clone()).await.unwrap();
        queue.flush().await;
        let queue_nodes = cluster.keys_per_node(&format!("{{wg:{prefix}}}:*")).await;
        assert_eq!(queue_nodes.iter().filter(|&&n| n > 0).count(), 1, "queue keys per node: {queue_nodes:?}");
        let state_nodes = cluster.keys_per_node(&format!("wg:{prefix}:*")).await;
        assert!(state_nodes.iter().filter(|&&n| n > 0).count() >= 2, "state keys per node: {state_nodes:?}");
        queue.complete(job.message_id).await.unwrap();
        queue.flush().await;

        // With every node's script cache emptied, the scripts are loaded again (NOSCRIPT) and run.
        cluster.flush_scripts().await;
        check_queue(&queue, &store).await;
        check_state(&state, "b", 20).await;
        store.close().await;
    })
    .await
    .expect("cluster test took over 120 s");
    drop(cluster);
}
