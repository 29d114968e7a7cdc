//! The Redis plumbing the queue and the shared state use: one connection type (a single node or
//! a cluster), one connection setup, and one timeout rule for every call.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

/// The longest one call to Redis may take, including waiting for a reconnection in progress.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the first connection may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a key prefix: letters, digits, `_`, `-` and `.` only, so it can neither break a hash
/// tag (`{`, `}`) nor act as a pattern in `SCAN MATCH`.
pub(crate) fn valid_prefix(prefix: &str) -> Result<(), String> {
    if prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        Ok(())
    } else {
        Err(format!("Redis key prefix {prefix:?} may only hold letters, digits, '_', '-' and '.'"))
    }
}

/// A connection to Redis, to a single node or to a cluster. Cheap to clone: clones share the
/// underlying multiplexed connection(s). Commands and scripts go through
/// [`ConnectionLike`]; on a cluster each is routed by its first key.
#[derive(Clone)]
pub enum RedisConnection {
    /// One node (standalone, or a primary behind a proxy).
    Single(ConnectionManager),
    /// A Redis Cluster: nodes discovered from the one given, commands routed by key slot.
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisConnection {
    // The inner connections' Debug may show connection info; keep credentials out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl RedisConnection {
    /// Connects to `url` (`redis://` or `rediss://`): a single node, or with `cluster` one node of
    /// a Redis Cluster from which the others are discovered. Same timeouts either way.
    pub async fn connect(url: &str, cluster: bool) -> Result<Self, RedisCallError> {
        if cluster { connect_cluster(url).await.map(Self::Cluster) } else { connect_manager(url).await.map(Self::Single) }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Per-attempt bounds shared by the single-node and cluster connections.
const NODE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
const NODE_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens a [`ClusterConnection`] from one node's URL: the other nodes are discovered from it,
/// each connection attempt and response bounded like [`connect_manager`]'s.
async fn connect_cluster(url: &str) -> Result<ClusterConnection, RedisCallError> {
    let client = ClusterClient::builder(vec![url])
        .connection_timeout(NODE_CONNECTION_TIMEOUT)
        .response_timeout(NODE_RESPONSE_TIMEOUT)
        .build()
        .map_err(RedisCallError::Redis)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection()).await {
        Ok(result) => result.map_err(RedisCallError::Redis),
        Err(_) => Err(RedisCallError::Timeout { op: "connect", after: CONNECT_TIMEOUT }),
    }
}

/// Opens a [`ConnectionManager`]: multiplexed, reconnecting by itself with backoff after Redis
/// restarts, each command bounded by a response timeout.
pub(crate) async fn connect_manager(url: &str) -> Result<ConnectionManager, RedisCallError> {
    let client = Client::open(url).map_err(RedisCallError::Redis)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(NODE_CONNECTION_TIMEOUT))
        .set_response_timeout(Some(NODE_RESPONSE_TIMEOUT))
        .set_max_delay(Duration::from_secs(1))
        // Few retries per reconnection, so a failing first connect reports its cause quickly;
        // after a failed reconnection, the next command starts another.
        .set_number_of_retries(2);
    match tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, config)).await {
        Ok(result) => result.map_err(RedisCallError::Redis),
        Err(_) => Err(RedisCallError::Timeout { op: "connect", after: CONNECT_TIMEOUT }),
    }
}

/// Runs one Redis call under [`CALL_TIMEOUT`]: the connection's own response timeout does not
/// cover waiting for a reconnection in progress.
pub(crate) async fn timed<T>(op: &'static str, fut: impl Future<Output = Result<T, RedisError>>) -> Result<T, RedisCallError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(result) => result.map_err(RedisCallError::Redis),
        Err(_) => Err(RedisCallError::Timeout { op, after: CALL_TIMEOUT }),
    }
}

/// A failed Redis call (or connection).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisCallError {
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(RedisError),
    /// No answer in time.
    #[error("redis: {op} timed out after {after:?}")]
    Timeout {
        /// The operation that timed out.
        op: &'static str,
        /// The bound it exceeded.
        after: Duration,
    },
}
