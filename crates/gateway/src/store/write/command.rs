//! The writes the store batches: each is one [`Command`], answered with one [`Reply`] once the
//! batch that carried it is committed.

use std::time::Duration;

use crate::domain::clock::duration_ms as millis;
use crate::domain::{
    AttemptOutcome, AttemptResult, InboundMessage, MessageId, MessageSid, MessageStatus, NewOutboundMessage, OptChange, Route, StatusEvent,
    StatusSource, UnixMillis,
};
use crate::store::records::{AttemptRecord, Contact, MessageRecord};

/// One write.
#[derive(Debug, Clone)]
pub enum Command {
    /// Store a new outbound message as `pending` (once per idempotency key).
    Insert {
        /// The validated message.
        message: NewOutboundMessage,
        /// How it gets its sender.
        route: Route,
        /// When the API received it.
        at: UnixMillis,
        /// Refuse free-form content outside the contact's 24-hour window (unless the message
        /// has a fallback template, stored instead).
        window_check: bool,
    },
    /// Reserve sendable messages for a worker.
    Claim {
        /// Which messages.
        pick: Pick,
        /// The worker.
        worker: String,
        /// How long the worker holds them (from the database's clock).
        lease: Duration,
        /// Check the 24-hour window again: free-form content outside it goes as its fallback
        /// template, or fails (63016) without being sent.
        window_check: bool,
    },
    /// Record that attempt N+1 is about to leave for Twilio, renewing the lease.
    BeginAttempt {
        /// The message.
        id: MessageId,
        /// The worker that must hold it.
        worker: String,
        /// The renewed lease.
        lease: Duration,
        /// When the request leaves.
        at: UnixMillis,
    },
    /// Record what an attempt came to.
    Finish {
        /// The message.
        id: MessageId,
        /// The worker that held it.
        worker: String,
        /// What happened.
        outcome: Finish,
        /// When.
        at: UnixMillis,
    },
    /// Apply a status report (a Twilio callback, mostly).
    Status(StatusReport),
    /// An operator sends a dead-lettered message again: it becomes `pending`, due at `at`, with a
    /// fresh allowance of attempts.
    Redrive {
        /// The message.
        id: MessageId,
        /// When.
        at: UnixMillis,
    },
    /// Withdraw a message Twilio does not have yet: it becomes `canceled`.
    Cancel {
        /// The message.
        id: MessageId,
        /// When.
        at: UnixMillis,
    },
    /// Reserve messages whose news stopped coming for the poller to ask Twilio about, and set when
    /// each is asked about next.
    ClaimPolls(PollPick),
    /// Store an incoming message and update its contact.
    Inbound {
        /// The message.
        message: Box<InboundMessage>,
        /// The consent keyword it carries.
        opt: OptChange,
    },
}

impl Command {
    /// What the crash tests' fault hook (`WG_FAULT_ABORT_AFTER_COMMIT`) matches: a new message's
    /// reference, a status report's SID, or an incoming message's SID.
    pub(crate) fn fault_marker(&self) -> Option<&str> {
        match self {
            Self::Insert { message, .. } => message.reference.as_deref(),
            Self::Status(report) => Some(report.sid.as_str()),
            Self::Inbound { message, .. } => Some(message.sid.as_str()),
            _ => None,
        }
    }
}

/// Which messages a claim reserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The most urgent due ones, at most this many (the messages table is the queue).
    Next(usize),
    /// These ones, named by an external queue; each is claimed only if it is sendable, due and
    /// not held by another live worker.
    Ids(Vec<MessageId>),
    /// This one, due or not, unless another live worker holds it (the API's immediate mode,
    /// which stores the message not due, so that no worker takes it first).
    Now(MessageId),
}

/// Which messages the poller asks Twilio about, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPick {
    /// At most this many.
    pub limit: usize,
    /// Only messages with no news for this long (`POLL_AFTER_MS`).
    pub after: Duration,
    /// The longest wait between two polls of one message (`POLL_MAX_INTERVAL_MS`).
    pub max_interval: Duration,
    /// Messages with no news for longer than this are no longer asked about (`POLL_MAX_AGE_MS`).
    pub max_age: Duration,
}

impl PollPick {
    /// When to ask about a message with no news since `last_status_at` again, after asking at
    /// `now`: as long again as it has been silent (at least `after`, at most `max_interval`), so
    /// the polls of a silent message thin out geometrically; `None` once that is past the horizon.
    pub fn next_poll(&self, last_status_at: UnixMillis, now: UnixMillis) -> Option<UnixMillis> {
        let silence = (now - last_status_at).max(0);
        let wait = silence.clamp(millis(self.after), millis(self.max_interval).max(millis(self.after)));
        let next = now + wait;
        (next - last_status_at <= millis(self.max_age)).then_some(next)
    }
}

/// A message the poller is to ask Twilio about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollTarget {
    /// Our id.
    pub id: MessageId,
    /// Twilio's SID.
    pub sid: MessageSid,
    /// Its status when claimed.
    pub status: MessageStatus,
    /// When it reached that status.
    pub last_status_at: UnixMillis,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Twilio accepted it (`attempt`) and named it `sid`; the message becomes `queued` (`accepted`
    /// through a Messaging Service).
    Accepted {
        /// The attempt.
        attempt: i64,
        /// Twilio's SID.
        sid: MessageSid,
        /// `Accepted`, or `Reconciled` for an earlier attempt found at Twilio.
        outcome: AttemptOutcome,
        /// `Worker`, or `Reconcile`.
        source: StatusSource,
    },
    /// Retry at `next_at`.
    Retry {
        /// The attempt.
        attempt: i64,
        /// `Retryable`, or `Unknown` when the request may have reached Twilio.
        outcome: AttemptOutcome,
        /// Twilio's answer.
        result: AttemptResult,
        /// When the next attempt is due.
        next_at: UnixMillis,
        /// Twilio throttled the sender: the attempt does not count against the message's
        /// allowance (only its validity period can end it).
        throttled: bool,
    },
    /// End the message: `failed` (a permanent error, an opted-out recipient), `dead_lettered`
    /// (attempts used up) or `expired` (its time ran out).
    Fail {
        /// The attempt, if one was made.
        attempt: Option<i64>,
        /// The status it ends in.
        status: MessageStatus,
        /// Twilio's answer, or the local reason as an error code and message.
        result: AttemptResult,
        /// Shown in the status history.
        detail: String,
    },
    /// An earlier attempt whose answer was lost and that Twilio has no record of.
    Lost {
        /// That attempt.
        attempt: i64,
        /// Why it is taken as lost.
        result: AttemptResult,
    },
    /// Give the message back without an attempt, to be looked at again at `not_before` (or at
    /// once).
    Release {
        /// When it is due again; `None` keeps its due time.
        not_before: Option<UnixMillis>,
    },
}

/// A status report and the message it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Our id, when the callback URL carried it.
    pub id: Option<MessageId>,
    /// Twilio's SID.
    pub sid: MessageSid,
    /// The status, its time and error code.
    pub event: StatusEvent,
    /// Who reported it.
    pub source: StatusSource,
    /// The channel's error message, if any.
    pub error_message: Option<String>,
}

/// The answer to one command.
#[derive(Debug, Clone)]
pub enum Reply {
    /// [`Command::Insert`]: the stored message, and whether it was created now (false: the
    /// idempotency key had been used).
    Inserted(Box<MessageRecord>, bool),
    /// [`Command::Insert`] refused: nothing was stored.
    Refused(crate::store::refusal::Refusal),
    /// [`Command::Claim`]: one entry per message looked at.
    Claimed(Vec<ClaimResult>),
    /// [`Command::BeginAttempt`]: the attempt's number, or `None` when the lease was lost.
    Began(Option<i64>),
    /// [`Command::Finish`] and [`Command::Status`].
    Applied(ApplyOutcome),
    /// [`Command::Inbound`].
    Received(InboundOutcome),
    /// [`Command::Redrive`] and [`Command::Cancel`].
    Operated(OperatorOutcome),
    /// [`Command::ClaimPolls`]: the messages to ask about, most overdue first.
    Polls(Vec<PollTarget>),
}

/// What an operator's command (a redrive, a cancel) did.
#[derive(Debug, Clone)]
pub enum OperatorOutcome {
    /// Done: the message as it is now.
    Done(Box<MessageRecord>),
    /// The message is not in a status the command applies to (a redrive of a message that is not
    /// dead-lettered; a cancel of one Twilio has, or that ended).
    NotApplicable {
        /// Its status.
        current: MessageStatus,
    },
    /// Not safe now: Twilio may have the message (a redrive of a dead letter Twilio has since
    /// reported on; a cancel while a worker sends it, or while an attempt's outcome is unknown).
    Unsafe {
        /// Its status.
        current: MessageStatus,
    },
    /// No such message.
    NotFound,
}

/// A message reserved for one worker.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The message as claimed.
    pub message: MessageRecord,
    /// An earlier attempt whose outcome is unknown (its worker died or its answer was lost): the
    /// worker must ask Twilio about it before sending again.
    pub unresolved: Option<AttemptRecord>,
}

/// What a claim found for one message.
#[derive(Debug, Clone)]
pub enum ClaimResult {
    /// Reserved for the worker.
    Claimed(Box<Claim>),
    /// Not due before this time.
    NotDue {
        /// The message.
        id: MessageId,
        /// When it is due.
        at: UnixMillis,
    },
    /// Held by another worker until this time.
    Leased {
        /// The message.
        id: MessageId,
        /// When the lease ends.
        until: UnixMillis,
    },
    /// Nothing left to send (sent, failed, unknown id), or failed now because its recipient
    /// opted out.
    Done {
        /// The message.
        id: MessageId,
    },
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The status moved forward.
    Applied {
        /// Status before.
        previous: MessageStatus,
        /// Status after.
        current: MessageStatus,
    },
    /// A stale report: logged, current status kept.
    Ignored {
        /// The status kept.
        current: MessageStatus,
    },
    /// The same callback again: neither applied nor logged a second time.
    Duplicate {
        /// The status kept.
        current: MessageStatus,
    },
    /// No message has this SID yet: the report is kept and applied when the SID is recorded.
    Unmatched,
    /// Nothing to do: no such message, or the worker no longer held it.
    Skipped,
}

/// What storing an incoming message did.
#[derive(Debug, Clone)]
pub struct InboundOutcome {
    /// Our id of the stored message.
    pub message_id: MessageId,
    /// The same SID was already stored: nothing was changed.
    pub duplicate: bool,
    /// The contact after the update.
    pub contact: Contact,
    /// The `message.received` event the gateway's own handlers are to run for (stored with the
    /// message, so that they run even if this process dies before it runs them).
    pub handler_event: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_message_is_polled_less_and_less_often_until_its_horizon() {
        let pick = PollPick {
            limit: 10,
            after: Duration::from_secs(600),
            max_interval: Duration::from_secs(86_400),
            max_age: Duration::from_secs(3 * 86_400),
        };
        let last_status_at = 1_000_000;
        let mut at = last_status_at + 600_000;
        let mut waits = Vec::new();
        while let Some(next) = pick.next_poll(last_status_at, at) {
            waits.push((next - at) / 1000);
            at = next;
        }
        // As long again as the silence so far, at most a day apart; the last poll within 3 days.
        assert_eq!(waits, [600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400]);
        assert!(at - last_status_at <= 3 * 86_400_000 && at + 86_400_000 - last_status_at > 3 * 86_400_000);
        // A message that had news a moment ago waits the whole `after`.
        assert_eq!(pick.next_poll(at, at), Some(at + 600_000));
        // Past the horizon: never again.
        assert_eq!(pick.next_poll(0, 3 * 86_400_000), None);
    }
}
