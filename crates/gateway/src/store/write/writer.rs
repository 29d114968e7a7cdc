//! Group commit: one writer per process takes commands from a channel, runs as many as have
//! arrived in one transaction, and answers each caller once that transaction is committed. Under
//! load batches grow by themselves (everything that arrived while the previous batch ran); a lone
//! command runs at once, alone.
//!
//! A failing batch is not the failure of every command in it: it is run again in halves, and
//! again, until the command that fails is alone (a deadlock between two writers is first retried
//! as it is). A batch that fails because the database is unreachable fails every command in it,
//! each with that cause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::command::{Command, Reply};
use crate::store::error::StoreError;
use crate::telemetry::metrics;

/// Runs one batch in one transaction.
pub(crate) trait Executor: Send + 'static {
    /// Runs `commands` and commits; one reply per command, or an error if nothing was committed.
    fn run(&mut self, commands: Arc<Vec<Command>>) -> impl Future<Output = Result<Vec<Result<Reply, StoreError>>, StoreError>> + Send;
}

struct Envelope {
    command: Command,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
}

/// The handle of the writer task.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Envelope>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope").finish_non_exhaustive()
    }
}

/// How many commands may wait for the writer before callers wait to hand theirs over.
const QUEUE: usize = 8_192;

impl Writer {
    /// Starts the writer; it runs until every handle is dropped, then finishes what it holds.
    pub fn spawn<E: Executor>(executor: E, max_batch: usize) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(rx, executor, max_batch.max(1)));
        (Self { tx }, task)
    }

    /// Hands `command` over and waits until the batch carrying it is committed.
    pub async fn submit(&self, command: Command) -> Result<Reply, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Envelope { command, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run<E: Executor>(mut rx: mpsc::Receiver<Envelope>, mut executor: E, max_batch: usize) {
    let mut envelopes = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut envelopes, max_batch).await > 0 {
        let (commands, replies): (Vec<Command>, Vec<_>) = envelopes.drain(..).map(|e| (e.command, e.reply)).unzip();
        let started = Instant::now();
        let size = commands.len();
        let answers = execute(&mut executor, commands).await;
        metrics::writer_batch(size, started.elapsed());
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The caller may have gone (a client that hung up): the effect is committed anyway.
            let _ = reply.send(answer);
        }
    }
}

/// Runs `commands` as one batch, and on failure in ever smaller parts, so that each command gets
/// the answer it would have had alone.
async fn execute<E: Executor>(executor: &mut E, commands: Vec<Command>) -> Vec<Result<Reply, StoreError>> {
    let commands = Arc::new(commands);
    let mut answers: Vec<Option<Result<Reply, StoreError>>> = (0..commands.len()).map(|_| None).collect();
    // Ranges of `commands` still to run, with whether a transient failure was already retried.
    let mut pending = vec![(0..commands.len(), false)];
    while let Some((range, retried)) = pending.pop() {
        let part = if range.len() == commands.len() { commands.clone() } else { Arc::new(commands[range.clone()].to_vec()) };
        match executor.run(part).await {
            Ok(replies) => {
                for (slot, reply) in answers[range].iter_mut().zip(replies) {
                    *slot = Some(reply);
                }
            }
            Err(e) if e.is_transient() && !retried => {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(1..20))).await;
                pending.push((range, true));
            }
            Err(e) if range.len() == 1 => answers[range.start] = Some(Err(e)),
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %crate::telemetry::chain(&e), commands = range.len(), "a batch could not be written");
                let shared = Arc::new(e);
                for slot in &mut answers[range] {
                    *slot = Some(Err(StoreError::Batch(shared.clone())));
                }
            }
            Err(e) => {
                tracing::info!(error = %crate::telemetry::chain(&e), commands = range.len(), "a batch failed; isolating the command that fails");
                metrics::writer_isolation();
                let middle = range.start + range.len() / 2;
                pending.push((middle..range.end, false));
                pending.push((range.start..middle, false));
            }
        }
    }
    answers.into_iter().map(|a| a.unwrap_or(Err(StoreError::Closed))).collect()
}
