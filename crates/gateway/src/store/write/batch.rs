//! The shapes a batch moves through: the keys it names ([`Keys`]), the rows loaded for it
//! ([`Loaded`]) and everything it writes ([`Changes`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::command::{Command, Finish, Pick, PollPick};
use super::rollups::RollupBook;
use crate::domain::{Content, EventType, MessageId, MessageSid, MessageStatus, OptChange, Origin, PhoneNumber, StatusSource, UnixMillis};
use crate::store::records::{AttemptRecord, Contact, Flag, MessageRecord, UnmatchedCallback};

/// How long an idempotency key keeps pointing at its message (24 hours).
pub const IDEMPOTENCY_KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// What the executor must load before planning: every key a batch names.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Messages by id.
    pub ids: BTreeSet<MessageId>,
    /// Messages by SID.
    pub sids: BTreeSet<MessageSid>,
    /// Early callbacks kept for SIDs that may be recorded now.
    pub unmatched: BTreeSet<MessageSid>,
    /// Idempotency keys of new messages.
    pub idempotency: BTreeSet<String>,
    /// How many of the most urgent due messages to pick (sum of `Pick::Next`).
    pub pick: usize,
    /// Messages a `Pick::Ids` names (their recipients' contacts and unresolved attempts are
    /// loaded too).
    pub claim_ids: BTreeSet<MessageId>,
    /// Contacts of inbound senders and of new free-form messages under the window check (claimed
    /// recipients are added after the first load).
    pub phones: BTreeSet<PhoneNumber>,
    /// Senders of a STOP: their sendable outbound messages are loaded to be canceled.
    pub stopping: BTreeSet<PhoneNumber>,
    /// The poller's pick (the largest, if a batch carries more than one).
    pub polls: Option<PollPick>,
    /// Recipients of new messages routed to a pool of numbers: the number each last dealt with
    /// is loaded, so that it keeps it.
    pub last_senders: BTreeSet<PhoneNumber>,
}

impl Keys {
    /// The keys `commands` name.
    pub fn of(commands: &[Command]) -> Self {
        let mut keys = Self::default();
        for command in commands {
            match command {
                Command::Insert { message, window_check, route, .. } => {
                    keys.idempotency.extend(message.idempotency_key.clone());
                    if route.is_pool() {
                        keys.last_senders.insert(message.to.clone());
                    }
                    // For its suppression, and its 24-hour window.
                    if !message.force || (*window_check && matches!(message.content, Content::FreeForm { .. })) {
                        keys.phones.insert(message.to.clone());
                    }
                }
                Command::Claim { pick: Pick::Next(n), .. } => keys.pick += n,
                Command::Claim { pick: Pick::Ids(ids), .. } => {
                    keys.ids.extend(ids.iter().copied());
                    keys.claim_ids.extend(ids.iter().copied());
                }
                // A cancel must see an unresolved attempt, as a claim does.
                Command::Claim { pick: Pick::Now(id), .. } | Command::Cancel { id, .. } => {
                    keys.ids.insert(*id);
                    keys.claim_ids.insert(*id);
                }
                Command::BeginAttempt { id, .. } | Command::Redrive { id, .. } => {
                    keys.ids.insert(*id);
                }
                Command::Finish { id, outcome, .. } => {
                    keys.ids.insert(*id);
                    if let Finish::Accepted { sid, .. } = outcome {
                        keys.sids.insert(sid.clone());
                        keys.unmatched.insert(sid.clone());
                    }
                }
                Command::Status(report) => {
                    keys.ids.extend(report.id);
                    keys.sids.insert(report.sid.clone());
                    keys.unmatched.insert(report.sid.clone());
                }
                Command::ClaimPolls(pick) => {
                    keys.polls = Some(keys.polls.filter(|p| p.limit >= pick.limit).unwrap_or(*pick));
                }
                Command::Inbound { message, opt } => {
                    keys.sids.insert(message.sid.clone());
                    keys.phones.insert(message.from.clone());
                    if *opt == OptChange::OptOut {
                        keys.stopping.insert(message.from.clone());
                    }
                }
            }
        }
        keys
    }
}

/// The rows a batch touches, as loaded (and locked) in its transaction.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// The database's clock at the start of the batch (leases are decided by it).
    pub now: UnixMillis,
    /// Messages by id (every one named by id or SID, and every one picked).
    pub messages: HashMap<MessageId, MessageRecord>,
    /// The most urgent due messages, in order (for `Pick::Next`).
    pub picked: Vec<MessageId>,
    /// Messages due to be polled, most overdue first (for `Command::ClaimPolls`).
    pub polled: Vec<MessageId>,
    /// Unresolved attempts of claimable messages.
    pub unresolved: HashMap<MessageId, AttemptRecord>,
    /// Contacts by phone.
    pub contacts: HashMap<PhoneNumber, Contact>,
    /// Early callbacks by SID, oldest first.
    pub unmatched: HashMap<MessageSid, Vec<UnmatchedCallback>>,
    /// Messages holding an idempotency key that is still valid.
    pub by_key: HashMap<String, MessageId>,
    /// The sendable outbound messages to each STOP sender (also in `messages`, with their
    /// unresolved attempts).
    pub sendable_to: HashMap<PhoneNumber, Vec<MessageId>>,
    /// Our number each recipient of `Keys::last_senders` last dealt with (its latest message,
    /// either way), where it has one.
    pub last_senders: HashMap<PhoneNumber, Origin>,
}

/// A contact update, merged into the stored row (`COALESCE` for the profile, the latest inbound
/// time, the consent keyword).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContactChange {
    pub phone: PhoneNumber,
    pub profile_name: Option<String>,
    pub wa_id: Option<String>,
    /// When the change happened (the consent's time, the row's `updated_at`).
    pub at: UnixMillis,
    /// When the contact last wrote, if this change is an inbound message (an opt-out Twilio
    /// reports is not one: it opens no 24-hour window).
    pub inbound_at: Option<UnixMillis>,
    pub opt: OptChange,
    /// Suppress the number with this Twilio error (a message from the contact lifts it).
    pub suppress: Option<i64>,
}

/// One status-log row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogRow {
    pub message_id: MessageId,
    pub previous_status: Option<MessageStatus>,
    pub new_status: MessageStatus,
    pub applied: bool,
    pub error_code: Option<i64>,
    pub source: StatusSource,
    pub detail: Option<String>,
    pub occurred_at: UnixMillis,
}

/// Everything a batch writes.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// New messages, with their idempotency key.
    pub inserted: Vec<(MessageId, Option<String>)>,
    /// The ids of `inserted`.
    pub new_ids: HashSet<MessageId>,
    /// Existing messages changed.
    pub updated: BTreeSet<MessageId>,
    pub log: Vec<LogRow>,
    pub attempts_started: Vec<AttemptRecord>,
    pub attempts_finished: Vec<AttemptRecord>,
    pub unmatched_consumed: BTreeSet<MessageSid>,
    pub unmatched_new: Vec<UnmatchedCallback>,
    pub contacts: Vec<ContactChange>,
    pub rollups: RollupBook,
    /// When to poll each message next (0: never again).
    pub polls: Vec<(MessageId, UnixMillis)>,
    /// Events for the outbox.
    pub events: Vec<EventRow>,
}

/// One event to store, with the endpoints it goes to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRow {
    pub id: String,
    pub event_type: EventType,
    pub message_id: Option<MessageId>,
    pub seq: i64,
    /// The Standard Webhooks payload, as sent.
    pub payload: String,
    pub created_at: UnixMillis,
    pub endpoints: Vec<String>,
}

/// The contact after `change`, as the database's merge computes it.
pub(crate) fn merge_contact(previous: Option<Contact>, change: &ContactChange) -> Contact {
    let previous = previous.unwrap_or_else(|| Contact::blank(&change.phone));
    Contact {
        phone: change.phone.clone(),
        profile_name: change.profile_name.clone().or(previous.profile_name),
        wa_id: change.wa_id.clone().or(previous.wa_id),
        last_inbound_at: previous.last_inbound_at.max(change.inbound_at),
        opted_out: Flag(change.opt.apply(previous.opted_out.0)),
        suppressed_code: suppression(change, previous.suppressed_code, change.suppress),
        suppressed_at: suppression(change, previous.suppressed_at, change.at),
    }
}

/// A suppression after `change`: set by a suppressing error, lifted by a message from the
/// contact, otherwise kept.
fn suppression<T>(change: &ContactChange, previous: Option<T>, set: impl Into<Option<T>>) -> Option<T> {
    match change.suppress {
        Some(_) => set.into(),
        None if change.inbound_at.is_some() => None,
        None => previous,
    }
}

/// The contact changes of a batch folded into one per phone (a statement may touch a row once).
pub(crate) fn merged_contact_changes(changes: &[ContactChange]) -> Vec<ContactChange> {
    let mut merged: BTreeMap<&PhoneNumber, ContactChange> = BTreeMap::new();
    for change in changes {
        match merged.get_mut(&change.phone) {
            Some(earlier) => {
                earlier.profile_name = change.profile_name.clone().or(earlier.profile_name.take());
                earlier.wa_id = change.wa_id.clone().or(earlier.wa_id.take());
                earlier.at = earlier.at.max(change.at);
                earlier.inbound_at = earlier.inbound_at.max(change.inbound_at);
                if change.opt != OptChange::None {
                    earlier.opt = change.opt;
                }
                // The later of a suppression and a message from the contact wins.
                if change.suppress.is_some() {
                    earlier.suppress = change.suppress;
                } else if change.inbound_at.is_some() {
                    earlier.suppress = None;
                }
            }
            None => {
                merged.insert(&change.phone, change.clone());
            }
        }
    }
    merged.into_values().collect()
}

/// The consent keyword as the contact statements read it: 0 none, 1 STOP, 2 START.
pub(crate) fn opt_code(opt: OptChange) -> i64 {
    match opt {
        OptChange::None => 0,
        OptChange::OptOut => 1,
        OptChange::OptIn => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at: UnixMillis, inbound: bool, suppress: Option<i64>) -> ContactChange {
        ContactChange {
            phone: PhoneNumber::parse("+14155550100").unwrap(),
            profile_name: None,
            wa_id: None,
            at,
            inbound_at: inbound.then_some(at),
            opt: OptChange::None,
            suppress,
        }
    }

    #[test]
    fn the_later_of_a_suppression_and_a_message_from_the_contact_wins() {
        let merged = merged_contact_changes(&[change(1, true, None), change(2, false, Some(21211))]);
        assert_eq!((merged[0].suppress, merged[0].inbound_at), (Some(21211), Some(1)));
        let merged = merged_contact_changes(&[change(1, false, Some(21211)), change(2, true, None)]);
        assert_eq!((merged[0].suppress, merged[0].inbound_at), (None, Some(2)));
    }

    #[test]
    fn a_suppression_is_set_by_its_error_lifted_by_a_message_and_otherwise_kept() {
        let suppressed = merge_contact(None, &change(5, false, Some(63024)));
        assert_eq!((suppressed.suppressed_code, suppressed.suppressed_at, suppressed.last_inbound_at), (Some(63024), Some(5), None));
        let kept = merge_contact(Some(suppressed.clone()), &ContactChange { opt: OptChange::OptOut, ..change(6, false, None) });
        assert_eq!((kept.suppressed_code, kept.suppressed_at), (Some(63024), Some(5)));
        let lifted = merge_contact(Some(suppressed), &change(7, true, None));
        assert_eq!((lifted.suppressed_code, lifted.suppressed_at, lifted.last_inbound_at), (None, None, Some(7)));
    }
}
