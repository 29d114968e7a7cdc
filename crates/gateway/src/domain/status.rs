//! The message status state machine.
//!
//! Outbound statuses have a rank: `pending = retrying < scheduled < accepted < queued < sending <
//! sent < partially_delivered < delivered < read < undelivered < failed < expired < dead_lettered <
//! canceled`. The failures rank highest because they are terminal: once a message has failed, no
//! report moves it again. (Only an operator's redrive takes a dead-lettered message back to
//! `pending`; that is not a report, and it is logged as such.) A report never lowers the rank, so
//! the current status is the highest-ranked status ever reported, whatever order reports arrive
//! in. Every status Twilio reports is understood: `receiving` / `received` (inbound) rank 0, so a
//! stray one is logged and changes nothing.
//!
//! Timestamps are merged independently of the status: each takes the earliest time any report
//! implied it (`read` implies `delivered`, which implies `sent`), so a `read` that overtakes its
//! `delivered` still fills `delivered_at`, and the late `delivered` only corrects that time.
//! Every merge is commutative, associative and idempotent: any order and any duplication of the
//! same set of reports ends in the same [`Lifecycle`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::clock::UnixMillis;

/// Every status a message can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(description = "A message's status. Outbound: `pending` (stored, waiting for a worker), `retrying` (an attempt failed; \
    waiting for the next), `queued` (Twilio accepted it), `sending`, `sent` (WhatsApp accepted it), `delivered`, `read`, \
    `undelivered` and `failed` (both terminal), `dead_lettered` (the gateway gave up after its last attempt; terminal \
    unless redriven with `POST /api/v1/whatsapp/messages/{id}/retry`), `canceled` (withdrawn before Twilio had it; \
    terminal), `expired` (not sent within its validity period; terminal). Twilio's own `accepted` and `scheduled` (a Messaging \
    Service holds it) and `partially_delivered` are kept too. Inbound: `received` (`receiving` while Twilio still fetches its media). A status never moves backwards.")]
pub enum MessageStatus {
    /// Stored and waiting for a worker (outbound).
    Pending,
    /// A send attempt failed in a way worth retrying; waiting for the next attempt.
    Retrying,
    /// Twilio accepted the message.
    Queued,
    /// Twilio is handing it to WhatsApp.
    Sending,
    /// WhatsApp accepted it.
    Sent,
    /// It reached the recipient's phone.
    Delivered,
    /// The recipient read it.
    Read,
    /// WhatsApp could not deliver it (terminal).
    Undelivered,
    /// It could not be sent (terminal).
    Failed,
    /// An inbound message we received.
    Received,
    /// The gateway gave up after its last attempt (terminal until an operator redrives it).
    DeadLettered,
    /// Withdrawn before Twilio had it: by `POST …/messages/{id}/cancel`, or because its
    /// recipient opted out (terminal).
    Canceled,
    /// Not sent within its validity period (`validity_s`, Twilio's `ValidityPeriod`), by the
    /// gateway or by Twilio (30036, 21611, 30001) (terminal).
    Expired,
    /// Twilio took it for a Messaging Service, which has not picked a sender yet.
    Accepted,
    /// Twilio holds it to send later (a Messaging Service's scheduling).
    Scheduled,
    /// Some of its parts reached the phone.
    PartiallyDelivered,
    /// An inbound message Twilio is still receiving (its media).
    Receiving,
}

/// The text is not a status the gateway knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message status {0:?}")]
pub struct UnknownStatus(pub String);

impl MessageStatus {
    /// All statuses, for validation messages and tests.
    pub const ALL: [Self; 17] = [
        Self::Pending,
        Self::Retrying,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Undelivered,
        Self::Failed,
        Self::Received,
        Self::DeadLettered,
        Self::Canceled,
        Self::Expired,
        Self::Accepted,
        Self::Scheduled,
        Self::PartiallyDelivered,
        Self::Receiving,
    ];

    /// The status's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Received => "received",
            Self::DeadLettered => "dead_lettered",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::PartiallyDelivered => "partially_delivered",
            Self::Receiving => "receiving",
        }
    }

    /// The rank that orders outbound statuses; a status never moves to a lower one.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending | Self::Retrying | Self::Received | Self::Receiving => 0,
            Self::Scheduled => 1,
            Self::Accepted => 2,
            Self::Queued => 3,
            Self::Sending => 4,
            Self::Sent => 5,
            Self::PartiallyDelivered => 6,
            Self::Delivered => 7,
            Self::Read => 8,
            Self::Undelivered => 9,
            Self::Failed => 10,
            // Distinct, so that any order of reports ends the same (in practice each excludes the
            // others: all three need a message Twilio never had).
            Self::Expired => 11,
            Self::DeadLettered => 12,
            Self::Canceled => 13,
        }
    }

    /// A bit of its own, for sets of statuses kept in one integer (the callbacks a message has
    /// received).
    pub fn bit(self) -> i64 {
        1 << Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Whether nothing can move the message any further.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Failed | Self::Undelivered | Self::DeadLettered | Self::Canceled | Self::Expired)
    }

    /// Whether the metrics count it as failed (`failed`, given up on: `dead_lettered`, or not
    /// sent in time: `expired`).
    pub fn is_failed(self) -> bool {
        matches!(self, Self::Failed | Self::DeadLettered | Self::Expired)
    }

    /// The statuses of a message Twilio has and has more news of to come: the poller asks Twilio
    /// about messages that stay in one of them too long (the SQL of `store::write::sql`'s
    /// `UNSETTLED` lists the same).
    pub const UNSETTLED: [Self; 7] =
        [Self::Scheduled, Self::Accepted, Self::Queued, Self::Sending, Self::Sent, Self::PartiallyDelivered, Self::Delivered];

    /// Whether a worker may still (re)send a message in this status.
    pub fn is_sendable(self) -> bool {
        matches!(self, Self::Pending | Self::Retrying)
    }

    /// Maps a Twilio callback's `MessageStatus` and `ErrorCode`: like [`Self::from_twilio`], but a
    /// failure whose code says the validity period ran out (30036, 21611, 30001) is `expired`.
    pub fn from_twilio_report(value: &str, error_code: Option<i64>) -> Option<Self> {
        match Self::from_twilio(value)? {
            Self::Failed | Self::Undelivered if error_code.is_some_and(crate::domain::error_codes::is_expiry) => Some(Self::Expired),
            status => Some(status),
        }
    }

    /// Maps a Twilio `MessageStatus` value; every status Twilio documents has one, anything else
    /// is `None`.
    pub fn from_twilio(value: &str) -> Option<Self> {
        match value {
            "accepted" => Some(Self::Accepted),
            "scheduled" => Some(Self::Scheduled),
            "canceled" => Some(Self::Canceled),
            "partially_delivered" => Some(Self::PartiallyDelivered),
            "receiving" => Some(Self::Receiving),
            "received" => Some(Self::Received),
            "queued" => Some(Self::Queued),
            "sending" => Some(Self::Sending),
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "undelivered" => Some(Self::Undelivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// One report of a status: from Twilio's answer to a send, a status callback, or the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// The status reported.
    pub status: MessageStatus,
    /// When it happened.
    pub at: UnixMillis,
    /// Twilio's error code, for `failed` / `undelivered`.
    pub error_code: Option<i64>,
}

/// The status part of a message: its current status and when it reached each stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// The current status.
    pub status: MessageStatus,
    /// When Twilio accepted it.
    pub queued_at: Option<UnixMillis>,
    /// When WhatsApp accepted it.
    pub sent_at: Option<UnixMillis>,
    /// When it reached the phone.
    pub delivered_at: Option<UnixMillis>,
    /// When it was read.
    pub read_at: Option<UnixMillis>,
    /// When it failed or was found undeliverable.
    pub failed_at: Option<UnixMillis>,
    /// Twilio's error code for the terminal failure.
    pub error_code: Option<i64>,
    /// When the current status was reached.
    pub last_status_at: UnixMillis,
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The lifecycle after the report.
    pub next: Lifecycle,
    /// Whether the report moved the status forward (as opposed to a duplicate or stale report).
    pub status_changed: bool,
    /// Whether anything at all changed (a stale report may still correct a timestamp).
    pub changed: bool,
}

fn earliest(current: Option<UnixMillis>, at: UnixMillis) -> Option<UnixMillis> {
    Some(current.map_or(at, |c| c.min(at)))
}

fn merge_codes(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Lifecycle {
    /// A new outbound message, stored at `at` and waiting to be sent.
    pub fn pending(at: UnixMillis) -> Self {
        Self {
            status: MessageStatus::Pending,
            queued_at: None,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            error_code: None,
            last_status_at: at,
        }
    }

    /// A dead-lettered message redriven by an operator at `at`: `pending` again, its failure
    /// forgotten (the status log keeps it), the stages it reached kept.
    pub fn redriven(&self, at: UnixMillis) -> Self {
        Self { status: MessageStatus::Pending, failed_at: None, error_code: None, last_status_at: at, ..self.clone() }
    }

    /// Applies one report. See the module documentation for the rules.
    pub fn apply(&self, event: &StatusEvent) -> Transition {
        let mut next = self.clone();
        let at = event.at;
        match event.status {
            MessageStatus::Queued => next.queued_at = earliest(next.queued_at, at),
            MessageStatus::Sent | MessageStatus::PartiallyDelivered => next.sent_at = earliest(next.sent_at, at),
            MessageStatus::Delivered => {
                next.sent_at = earliest(next.sent_at, at);
                next.delivered_at = earliest(next.delivered_at, at);
            }
            MessageStatus::Read => {
                next.sent_at = earliest(next.sent_at, at);
                next.delivered_at = earliest(next.delivered_at, at);
                next.read_at = earliest(next.read_at, at);
            }
            MessageStatus::Undelivered => {
                next.sent_at = earliest(next.sent_at, at);
                next.failed_at = earliest(next.failed_at, at);
            }
            MessageStatus::Failed | MessageStatus::DeadLettered | MessageStatus::Expired => next.failed_at = earliest(next.failed_at, at),
            MessageStatus::Pending
            | MessageStatus::Retrying
            | MessageStatus::Sending
            | MessageStatus::Received
            | MessageStatus::Receiving
            | MessageStatus::Accepted
            | MessageStatus::Scheduled
            | MessageStatus::Canceled => {}
        }
        let (current_rank, event_rank) = (self.status.rank(), event.status.rank());
        let status_changed = event_rank > current_rank;
        if status_changed {
            next.status = event.status;
            next.last_status_at = at;
            next.error_code = event.error_code;
        } else if event_rank == current_rank && event.status == self.status && event_rank > 0 {
            next.last_status_at = next.last_status_at.min(at);
            next.error_code = merge_codes(next.error_code, event.error_code);
        }
        let changed = next != *self;
        Transition { next, status_changed, changed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(status: MessageStatus, at: i64) -> StatusEvent {
        StatusEvent { status, at, error_code: None }
    }

    fn run(events: &[StatusEvent]) -> Lifecycle {
        events.iter().fold(Lifecycle::pending(0), |state, event| state.apply(event).next)
    }

    #[test]
    fn happy_path_moves_forward_and_records_each_time() {
        let end = run(&[
            ev(MessageStatus::Queued, 10),
            ev(MessageStatus::Sent, 20),
            ev(MessageStatus::Delivered, 30),
            ev(MessageStatus::Read, 40),
        ]);
        assert_eq!(end.status, MessageStatus::Read);
        assert_eq!((end.queued_at, end.sent_at, end.delivered_at, end.read_at), (Some(10), Some(20), Some(30), Some(40)));
        assert_eq!(end.last_status_at, 40);
    }

    #[test]
    fn read_before_delivered_keeps_read_and_sets_delivered_at() {
        let after_read = Lifecycle::pending(0).apply(&ev(MessageStatus::Read, 40));
        assert!(after_read.status_changed);
        assert_eq!(after_read.next.delivered_at, Some(40));
        let late_delivered = after_read.next.apply(&ev(MessageStatus::Delivered, 30));
        assert!(!late_delivered.status_changed);
        assert_eq!(late_delivered.next.status, MessageStatus::Read);
        assert_eq!(late_delivered.next.delivered_at, Some(30), "the real delivery time wins");
    }

    #[test]
    fn stale_report_does_not_go_backwards() {
        let state = run(&[ev(MessageStatus::Delivered, 30)]);
        let t = state.apply(&ev(MessageStatus::Sent, 20));
        assert!(!t.status_changed);
        assert_eq!(t.next.status, MessageStatus::Delivered);
    }

    #[test]
    fn duplicate_report_changes_nothing() {
        let state = run(&[ev(MessageStatus::Sent, 20)]);
        let t = state.apply(&ev(MessageStatus::Sent, 20));
        assert!(!t.status_changed && !t.changed);
    }

    #[test]
    fn failure_is_terminal_and_keeps_its_code() {
        let failed = StatusEvent { status: MessageStatus::Undelivered, at: 50, error_code: Some(63016) };
        let state = run(&[ev(MessageStatus::Sent, 20), failed]);
        assert_eq!(state.status, MessageStatus::Undelivered);
        assert_eq!(state.error_code, Some(63016));
        let t = state.apply(&ev(MessageStatus::Read, 60));
        assert!(!t.status_changed);
        assert_eq!(t.next.status, MessageStatus::Undelivered);
    }

    #[test]
    fn every_status_twilio_documents_is_understood_and_ranked() {
        // Twilio's `message_enum_status`, in its order.
        let documented = [
            "queued",
            "sending",
            "sent",
            "failed",
            "delivered",
            "undelivered",
            "receiving",
            "received",
            "accepted",
            "scheduled",
            "read",
            "partially_delivered",
            "canceled",
        ];
        for name in documented {
            let status = MessageStatus::from_twilio(name).unwrap_or_else(|| panic!("{name} is not understood"));
            assert_eq!(status.as_str(), name);
        }
        assert_eq!(MessageStatus::from_twilio("bogus"), None);
        use MessageStatus::*;
        let order = [
            Pending,
            Scheduled,
            Accepted,
            Queued,
            Sending,
            Sent,
            PartiallyDelivered,
            Delivered,
            Read,
            Undelivered,
            Failed,
            Expired,
            DeadLettered,
            Canceled,
        ];
        assert!(order.windows(2).all(|w| w[0].rank() < w[1].rank()), "{order:?}");
        assert_eq!((Pending.rank(), Retrying.rank(), Receiving.rank()), (0, Received.rank(), 0));
        let partial = Lifecycle::pending(0).apply(&ev(PartiallyDelivered, 5)).next;
        assert_eq!((partial.status, partial.sent_at, partial.delivered_at), (PartiallyDelivered, Some(5), None));
        assert_eq!(MessageStatus::from_twilio_report("failed", Some(30036)), Some(Expired));
        assert_eq!(MessageStatus::from_twilio_report("undelivered", Some(30001)), Some(Expired));
        assert_eq!(MessageStatus::from_twilio_report("failed", Some(30008)), Some(Failed));
        let bits: std::collections::BTreeSet<i64> = MessageStatus::ALL.iter().map(|s| s.bit()).collect();
        assert_eq!(bits.len(), MessageStatus::ALL.len(), "one bit each");
    }

    fn any_event() -> impl Strategy<Value = StatusEvent> {
        // One status per rank (two of one rank keep whichever came first).
        let statuses = prop::sample::select(vec![
            MessageStatus::Scheduled,
            MessageStatus::Accepted,
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::PartiallyDelivered,
            MessageStatus::Delivered,
            MessageStatus::Read,
            MessageStatus::Undelivered,
            MessageStatus::Failed,
            MessageStatus::Expired,
            MessageStatus::Canceled,
        ]);
        (statuses, 1i64..1_000, prop::option::of(prop::sample::select(vec![30003i64, 63016, 30008])))
            .prop_map(|(status, at, error_code)| StatusEvent { status, at, error_code })
    }

    proptest! {
        #[test]
        fn any_order_and_duplication_of_the_same_reports_ends_in_the_same_state(
            events in prop::collection::vec(any_event(), 1..12),
            order in prop::collection::vec(any::<prop::sample::Index>(), 1..30),
        ) {
            let in_order = run(&events);
            // A permutation with repeats: every event at least once, some twice or more.
            let mut shuffled: Vec<StatusEvent> = order.iter().map(|i| events[i.index(events.len())].clone()).collect();
            shuffled.extend(events.iter().rev().cloned());
            prop_assert_eq!(run(&shuffled), in_order);
        }

        #[test]
        fn status_rank_never_decreases(events in prop::collection::vec(any_event(), 1..20)) {
            let mut state = Lifecycle::pending(0);
            for event in &events {
                let next = state.apply(event).next;
                prop_assert!(next.status.rank() >= state.status.rank());
                state = next;
            }
        }
    }
}
