//! Group commit: one writer per process takes commands from a channel, runs as many as have
//! arrived in one transaction, and answers each caller once that transaction is committed. Under
//! load batches grow by themselves (everything that arrived while the previous batch ran); a lone
//! command runs at once, alone.
//!
//! A failing batch is not the failure of every command in it: it is run again in halves, and
//! again, until the command that fails is alone (a deadlock between two writers is first retried
//! as it is). A batch that fails because the database is unreachable fails every command in it,
//! each with that cause.
//!
//! A caller waits at most `wait` for the writer to take its command (the database is stuck, or
//! its pool is full): then the command is withdrawn, never run, and the caller hears that the
//! database is unavailable. Once taken, a command is answered with what its batch did.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::command::{Command, Reply};
use crate::store::error::StoreError;
use crate::telemetry::metrics;

/// Runs one batch in one transaction.
pub(crate) trait Executor: Send + 'static {
    /// Runs `commands` and commits; one reply per command, or an error if nothing was committed.
    fn run(&mut self, commands: Arc<Vec<Command>>) -> impl Future<Output = Result<Vec<Result<Reply, StoreError>>, StoreError>> + Send;

    /// Gets ready before the first batch (opens its connection, prepares its statements), so that
    /// the first callers after a start do not wait for that. A failure here is not fatal: the
    /// first batch tries again.
    fn warm(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

struct Envelope {
    command: Command,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
    /// Who had the last word: the writer taking the command, or its caller withdrawing it.
    state: Arc<AtomicU8>,
}

/// The handle of the writer task.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Envelope>,
    /// The lane of new messages, if it has loops of its own: an API request then waits only for
    /// other new messages, never behind a batch of claims and callbacks.
    inserts: Option<mpsc::Sender<Envelope>>,
    wait: Duration,
    stats: Arc<WriterStats>,
    /// One per loop: a request to warm up, answered when done (see [`Writer::warm`]).
    warm: Arc<[mpsc::Sender<oneshot::Sender<()>>]>,
}

/// What the writer has done (for tests and inspection).
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Failed batches split to isolate a failing command.
    pub isolations: AtomicU64,
}

/// How many commands may wait for the writer before callers wait to hand theirs over.
const QUEUE: usize = 8_192;

impl Writer {
    /// Starts `executors.len()` writer loops, each on a thread of its own with a runtime of its
    /// own (so that its round trips to the database never wait behind the request tasks for a
    /// turn), taking batches from one channel: while one batch runs, the next forms and the next
    /// free loop takes it. `inserts`, if given, are loops of a second lane that takes only new
    /// messages (`Command::Insert`). They run until every handle is dropped, then finish what they
    /// hold. A caller waits at most `wait` for its command to be taken.
    pub fn spawn<E: Executor>(
        executors: Vec<E>,
        inserts: Vec<E>,
        max_batch: usize,
        wait: Duration,
        fault: Option<String>,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(WriterStats::default());
        let mut warm_requests = Vec::with_capacity(executors.len() + inserts.len());
        let tx = spawn_lane("wg-writer", executors, max_batch, &stats, &fault, &mut warm_requests)?;
        let inserts = if inserts.is_empty() {
            None
        } else {
            Some(spawn_lane("wg-writer-new", inserts, max_batch, &stats, &fault, &mut warm_requests)?)
        };
        Ok(Self { tx, inserts, wait, stats, warm: warm_requests.into() })
    }

    /// Has every loop open its connection and prepare its statements (once the schema is in
    /// place), so that the first callers do not pay for it; returns when all are done, or after
    /// `wait`. A loop that cannot get ready says so in the log and tries again on its first batch.
    pub async fn warm(&self) {
        let _ = tokio::time::timeout(self.wait, async {
            let mut answers = Vec::with_capacity(self.warm.len());
            for request in self.warm.iter() {
                let (done, answer) = oneshot::channel();
                if request.send(done).await.is_ok() {
                    answers.push(answer);
                }
            }
            for answer in answers {
                let _ = answer.await;
            }
        })
        .await;
    }

    /// Hands `command` over and waits until the batch carrying it is committed.
    pub async fn submit(&self, command: Command) -> Result<Reply, StoreError> {
        let lane = match (&self.inserts, &command) {
            (Some(inserts), Command::Insert { .. }) => inserts,
            _ => &self.tx,
        };
        let (reply, mut answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(PENDING));
        let envelope = Envelope { command, reply, state: state.clone() };
        let deadline = tokio::time::Instant::now() + self.wait;
        match tokio::time::timeout_at(deadline, lane.send(envelope)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Closed),
            Err(_) => return Err(StoreError::Unavailable("the database has not taken a write in time (the writer is busy)".into())),
        }
        if let Ok(answer) = tokio::time::timeout_at(deadline, &mut answer).await {
            return answer.map_err(|_| StoreError::Closed)?;
        }
        if state.compare_exchange(PENDING, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return Err(StoreError::Unavailable("the database has not taken a write in time (the writer is busy)".into()));
        }
        // Taken before the deadline: its batch decides.
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// What the writer has done.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

/// Starts one lane: its loops, sharing one channel.
fn spawn_lane<E: Executor>(
    name: &str,
    executors: Vec<E>,
    max_batch: usize,
    stats: &Arc<WriterStats>,
    fault: &Option<String>,
    warm_requests: &mut Vec<mpsc::Sender<oneshot::Sender<()>>>,
) -> std::io::Result<mpsc::Sender<Envelope>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for (n, executor) in executors.into_iter().enumerate() {
        let (rx, stats, fault) = (rx.clone(), stats.clone(), fault.clone());
        let (warm_tx, warm) = mpsc::channel(1);
        warm_requests.push(warm_tx);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || runtime.block_on(run(rx, executor, max_batch.max(1), stats, fault, warm)))?;
    }
    Ok(tx)
}

async fn run<E: Executor>(
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Envelope>>>,
    mut executor: E,
    max_batch: usize,
    stats: Arc<WriterStats>,
    fault: Option<String>,
    mut warm: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut envelopes = Vec::with_capacity(max_batch);
    loop {
        // One loop at a time gathers a batch; the others run theirs meanwhile.
        let received = tokio::select! {
            received = async { rx.lock().await.recv_many(&mut envelopes, max_batch).await } => received,
            Some(done) = warm.recv() => {
                if let Err(e) = executor.warm().await {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "a writer could not get ready; its first batch tries again");
                }
                let _ = done.send(());
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let taken = envelopes.drain(..).filter(|e| e.state.compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok());
        let (commands, replies): (Vec<Command>, Vec<_>) = taken.map(|e| (e.command, e.reply)).unzip();
        if commands.is_empty() {
            continue;
        }
        let started = Instant::now();
        let size = commands.len();
        let crash = fault.as_deref().is_some_and(|marker| commands.iter().any(|c| c.fault_marker() == Some(marker)));
        let answers = execute(&mut executor, commands, &stats).await;
        metrics::writer_batch(size, started.elapsed());
        if crash {
            // Fault injection for the crash tests: die after the commit, before any answer.
            tracing::error!("WG_FAULT_ABORT_AFTER_COMMIT: aborting after a committed batch");
            std::process::abort();
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The caller may have gone (a client that hung up): the effect is committed anyway.
            let _ = reply.send(answer);
        }
    }
}

/// Runs `commands` as one batch, and on failure in ever smaller parts, so that each command gets
/// the answer it would have had alone.
async fn execute<E: Executor>(executor: &mut E, commands: Vec<Command>, stats: &WriterStats) -> Vec<Result<Reply, StoreError>> {
    let commands = Arc::new(commands);
    let mut answers: Vec<Option<Result<Reply, StoreError>>> = (0..commands.len()).map(|_| None).collect();
    // Ranges of `commands` still to run, with whether a transient failure was already retried.
    let mut pending = vec![(0..commands.len(), false)];
    while let Some((range, retried)) = pending.pop() {
        let part = if range.len() == commands.len() { commands.clone() } else { Arc::new(commands[range.clone()].to_vec()) };
        match executor.run(part).await {
            Ok(replies) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
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
                stats.isolations.fetch_add(1, Ordering::Relaxed);
                metrics::writer_isolation();
                let middle = range.start + range.len() / 2;
                pending.push((middle..range.end, false));
                pending.push((range.start..middle, false));
            }
        }
    }
    answers.into_iter().map(|a| a.unwrap_or(Err(StoreError::Closed))).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::{MessageId, MessageSid, MessageStatus, StatusEvent, StatusSource};
    use crate::store::write::command::{ApplyOutcome, StatusReport};

    /// An executor that fails any batch holding a poisoned SID, and records each batch's size.
    struct Poisoned {
        poison: MessageSid,
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl Executor for Poisoned {
        async fn run(&mut self, commands: Arc<Vec<Command>>) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
            self.batches.lock().unwrap().push(commands.len());
            if commands.iter().any(|c| matches!(c, Command::Status(r) if r.sid == self.poison)) {
                return Err(StoreError::Corrupt("poisoned".into()));
            }
            Ok(commands.iter().map(|_| Ok(Reply::Applied(ApplyOutcome::Unmatched))).collect())
        }
    }

    /// An executor that counts its warm-ups, and answers every command.
    struct Counting {
        warmed: Arc<AtomicU64>,
    }

    impl Executor for Counting {
        async fn run(&mut self, commands: Arc<Vec<Command>>) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
            Ok(commands.iter().map(|_| Ok(Reply::Applied(ApplyOutcome::Unmatched))).collect())
        }

        async fn warm(&mut self) -> Result<(), StoreError> {
            self.warmed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn warm_returns_once_every_loop_is_warm_and_the_loops_still_take_commands() {
        let warmed = Arc::new(AtomicU64::new(0));
        let executors = (0..3).map(|_| Counting { warmed: warmed.clone() }).collect();
        let writer = Writer::spawn(executors, Vec::new(), 8, Duration::from_secs(5), None).unwrap();
        assert_eq!(warmed.load(Ordering::SeqCst), 0, "no warm-up before it is asked for");
        writer.warm().await;
        assert_eq!(warmed.load(Ordering::SeqCst), 3);
        assert!(matches!(writer.submit(report(1)).await, Ok(Reply::Applied(ApplyOutcome::Unmatched))));
    }

    fn report(n: u32) -> Command {
        Command::Status(StatusReport {
            id: Some(MessageId::new()),
            sid: MessageSid::parse(&format!("SM{n:032x}")).unwrap(),
            event: StatusEvent { status: MessageStatus::Sent, at: 0, error_code: None },
            source: StatusSource::Callback,
            error_message: None,
        })
    }

    #[tokio::test]
    async fn one_bad_command_fails_alone_and_the_rest_of_its_batch_commits() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let poison = MessageSid::parse(&format!("SM{:032x}", 37)).unwrap();
        let mut executor = Poisoned { poison, batches: batches.clone() };
        let stats = WriterStats::default();
        let answers = execute(&mut executor, (0..100).map(report).collect(), &stats).await;
        let failed: Vec<usize> = answers.iter().enumerate().filter(|(_, a)| a.is_err()).map(|(i, _)| i).collect();
        assert_eq!(failed, [37], "only the poisoned command fails");
        assert!(matches!(&answers[37], Err(StoreError::Corrupt(_))), "with its own error: {:?}", answers[37]);
        let sizes = batches.lock().unwrap().clone();
        assert_eq!(sizes[0], 100, "the first attempt is the whole batch");
        assert!(sizes.len() <= 2 * 7 + 1, "bisection, not one transaction per command: {sizes:?}");
        // Every run either committed, was split, or was the poisoned command alone.
        let (committed, split) = (stats.batches.load(Ordering::Relaxed) as usize, stats.isolations.load(Ordering::Relaxed) as usize);
        assert_eq!(committed + split + 1, sizes.len(), "{sizes:?}");
    }

    /// An executor of one lane: records the kinds of command it ran, and can be held (a batch that
    /// does not end until released).
    struct Lane {
        ran: Arc<Mutex<Vec<&'static str>>>,
        hold: Option<Arc<tokio::sync::Semaphore>>,
    }

    impl Executor for Lane {
        async fn run(&mut self, commands: Arc<Vec<Command>>) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
            if let Some(hold) = &self.hold {
                let _ = hold.acquire().await;
            }
            let kinds = commands.iter().map(|c| if matches!(c, Command::Insert { .. }) { "insert" } else { "other" });
            self.ran.lock().unwrap().extend(kinds);
            Ok(commands.iter().map(|_| Ok(Reply::Applied(ApplyOutcome::Unmatched))).collect())
        }
    }

    fn insert() -> Command {
        use crate::domain::{Content, NewOutboundMessage, PhoneNumber, Priority};
        let to = PhoneNumber::parse("+14155550100").unwrap();
        let message = NewOutboundMessage {
            id: MessageId::new(),
            to: to.clone(),
            from: None,
            content: Content::FreeForm { body: Some("hi".into()), media_urls: Vec::new() },
            priority: Priority::DEFAULT,
            send_at: None,
            reference: None,
            metadata: None,
            idempotency_key: None,
            validity_s: None,
            fallback: None,
            force: false,
        };
        Command::Insert { message, route: to.into(), at: 0, window_check: false }
    }

    #[tokio::test]
    async fn new_messages_go_through_their_own_lane_and_never_wait_behind_other_writes() {
        let (general, inserts) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        // The general lane's batch does not end until released.
        let hold = Arc::new(tokio::sync::Semaphore::new(0));
        let writer = Writer::spawn(
            vec![Lane { ran: general.clone(), hold: Some(hold.clone()) }],
            vec![Lane { ran: inserts.clone(), hold: None }],
            8,
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        let held = tokio::spawn({
            let writer = writer.clone();
            async move { writer.submit(report(1)).await }
        });
        // While the other lane is stuck in its batch, new messages are still committed.
        for _ in 0..3 {
            assert!(writer.submit(insert()).await.is_ok());
        }
        assert_eq!(*inserts.lock().unwrap(), ["insert"; 3]);
        assert!(general.lock().unwrap().is_empty(), "the held batch has not ended");
        hold.add_permits(1);
        assert!(held.await.unwrap().is_ok());
        assert_eq!(*general.lock().unwrap(), ["other"]);
    }

    #[tokio::test]
    async fn without_a_lane_of_their_own_new_messages_share_the_one_lane() {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer::spawn(vec![Lane { ran: ran.clone(), hold: None }], Vec::new(), 8, Duration::from_secs(5), None).unwrap();
        assert!(writer.submit(insert()).await.is_ok());
        assert!(writer.submit(report(1)).await.is_ok());
        assert_eq!(*ran.lock().unwrap(), ["insert", "other"]);
    }

    /// An executor that takes a while, so that commands pile up behind a batch.
    struct Slow;

    impl Executor for Slow {
        async fn run(&mut self, commands: Arc<Vec<Command>>) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(commands.iter().map(|_| Ok(Reply::Applied(ApplyOutcome::Unmatched))).collect())
        }
    }

    #[tokio::test]
    async fn a_command_the_writer_has_not_taken_in_time_is_withdrawn_and_never_run() {
        let writer = Writer::spawn(vec![Slow], Vec::new(), 1, Duration::from_millis(100), None).unwrap();
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.submit(report(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = writer.submit(report(2)).await;
        assert!(matches!(&second, Err(e) if e.is_unavailable()), "{second:?}");
        assert!(first.await.unwrap().is_ok(), "the command already taken is answered with its batch's outcome");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(writer.stats().batches.load(Ordering::Relaxed), 1, "the withdrawn command never ran");
    }
}
