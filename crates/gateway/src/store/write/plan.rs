//! Applying a batch of commands to the rows they touch, in memory. Pure: the executor loads the
//! rows ([`Loaded`]), this module decides every change and every reply ([`Plan`]), and the
//! executor writes the changes in one transaction. Both backends share these rules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::batch::{Changes, ContactChange, Loaded, LogRow, merge_contact};
use super::command::{ApplyOutcome, Claim, ClaimResult, Command, InboundOutcome, Pick, PollPick, PollTarget, Reply, StatusReport};
use super::routes::EventRoutes;
use crate::domain::error_codes::{OUTSIDE_WINDOW, UNSUBSCRIBED, describe};
use crate::domain::rollup::{Counted, transition};
use crate::domain::{
    AttemptResult, Content, Direction, InboundMessage, Lifecycle, MAX_VALIDITY_S, MessageId, MessageSid, MessageStatus, NewOutboundMessage,
    OptChange, Origin, PhoneNumber, Priority, Route, StatusEvent, StatusSource, UnixMillis, outside_window, window_open,
};
use crate::store::error::StoreError;
use crate::store::records::{AttemptRecord, Contact, MessageRecord, UnmatchedCallback, media_column};
use crate::store::refusal::Refusal;

/// A batch applied in memory: the rows after it, what to write, and each command's reply.
pub(crate) struct Plan {
    pub now: UnixMillis,
    pub messages: HashMap<MessageId, MessageRecord>,
    pub(super) by_sid: HashMap<MessageSid, MessageId>,
    picked: std::vec::IntoIter<MessageId>,
    polled: std::vec::IntoIter<MessageId>,
    pub(super) unresolved: HashMap<MessageId, AttemptRecord>,
    pub(super) contacts: HashMap<PhoneNumber, Contact>,
    pub(super) unmatched: HashMap<MessageSid, Vec<UnmatchedCallback>>,
    by_key: HashMap<String, MessageId>,
    sendable_to: HashMap<PhoneNumber, Vec<MessageId>>,
    last_senders: HashMap<PhoneNumber, Origin>,
    shard: String,
    pub(super) routes: Arc<EventRoutes>,
    pub changes: Changes,
}

impl Plan {
    /// Applies `commands` in order to `loaded`; `shard` is this writer's all-phones rollup key,
    /// `routes` the endpoints that events go to.
    pub fn run(loaded: Loaded, commands: &[Command], shard: &str, routes: Arc<EventRoutes>) -> (Self, Vec<Result<Reply, StoreError>>) {
        let by_sid = loaded.messages.values().filter_map(|m| m.message_sid.clone().map(|sid| (sid, m.id))).collect();
        let mut plan = Self {
            now: loaded.now,
            messages: loaded.messages,
            by_sid,
            picked: loaded.picked.into_iter(),
            polled: loaded.polled.into_iter(),
            unresolved: loaded.unresolved,
            contacts: loaded.contacts,
            unmatched: loaded.unmatched,
            by_key: loaded.by_key,
            sendable_to: loaded.sendable_to,
            last_senders: loaded.last_senders,
            shard: shard.to_owned(),
            routes,
            changes: Changes::default(),
        };
        let replies = commands.iter().map(|command| plan.apply(command)).collect();
        plan.emit_status_events();
        plan.changes.rollups.prune();
        (plan, replies)
    }

    fn apply(&mut self, command: &Command) -> Result<Reply, StoreError> {
        Ok(match command {
            Command::Insert { message, route, at, window_check } => self.insert(message, route, *at, *window_check),
            Command::Claim { pick, worker, lease, window_check } => Reply::Claimed(self.claim(pick, worker, *lease, *window_check)),
            Command::BeginAttempt { id, worker, lease, at } => Reply::Began(self.begin_attempt(*id, worker, *lease, *at)),
            Command::Finish { id, worker, outcome, at } => Reply::Applied(self.finish(*id, worker, outcome, *at)?),
            Command::Status(report) => Reply::Applied(self.status(report)?),
            Command::Redrive { id, at } => Reply::Operated(self.redrive(*id, *at)),
            Command::Cancel { id, at } => Reply::Operated(self.cancel(*id, *at, "canceled by the application")),
            Command::ClaimPolls(pick) => Reply::Polls(self.claim_polls(pick)),
            Command::Inbound { message, opt } => self.inbound(message, *opt),
        })
    }

    fn insert(&mut self, message: &NewOutboundMessage, route: &Route, at: UnixMillis, window_check: bool) -> Reply {
        if let Some(existing) = message.idempotency_key.as_ref().and_then(|key| self.by_key.get(key)).and_then(|id| self.messages.get(id)) {
            return Reply::Inserted(Box::new(existing.clone()), false);
        }
        let (body, media_urls, mut content_sid, mut content_variables) = match &message.content {
            Content::FreeForm { body, media_urls } => (body.clone(), media_urls.clone(), None, None),
            Content::Template { content_sid, content_variables } => {
                (None, Vec::new(), Some(content_sid.clone()), content_variables.clone())
            }
        };
        // Twilio refused this number for good before: nothing more goes to it unless forced.
        if let Some(contact) = self.contacts.get(&message.to).filter(|_| !message.force)
            && let (Some(code), Some(since)) = (contact.suppressed_code, contact.suppressed_at)
        {
            return Reply::Refused(Refusal::Suppressed { code, since });
        }
        // Free-form content reaches only a contact who wrote in the last 24 hours: otherwise its
        // fallback template goes instead (the text is kept with it), or the message is refused.
        let mut detail = None;
        if window_check && content_sid.is_none() {
            let last_inbound_at = self.contacts.get(&message.to).and_then(|c| c.last_inbound_at);
            if !window_open(last_inbound_at, at) {
                let Some(fallback) = &message.fallback else { return Reply::Refused(Refusal::OutsideWindow { last_inbound_at }) };
                content_sid = Some(fallback.content_sid.clone());
                content_variables = fallback.content_variables.clone();
                detail = Some(format!("{}: to be sent as its fallback template {}", outside_window(last_inbound_at), fallback.content_sid));
            }
        }
        let due = message.send_at.unwrap_or(at).max(at);
        let validity_s = message.validity_s.unwrap_or(MAX_VALIDITY_S);
        // A later message to the same recipient in this batch keeps the sender picked now.
        let from = route.pick(&message.to, self.last_senders.get(&message.to));
        if route.is_pool() {
            self.last_senders.insert(message.to.clone(), from.clone());
        }
        let record = MessageRecord {
            id: message.id,
            message_sid: None,
            direction: Direction::Outbound,
            from,
            to: message.to.clone(),
            body,
            media_urls,
            content_sid,
            content_variables,
            fallback_content_sid: message.fallback.as_ref().map(|f| f.content_sid.clone()),
            fallback_content_variables: message.fallback.as_ref().and_then(|f| f.content_variables.clone()),
            error_message: None,
            priority: message.priority,
            attempts: 0,
            attempt_base: 0,
            validity_s,
            expires_at: Some(due.saturating_add(validity_s.saturating_mul(1000))),
            reference: message.reference.clone(),
            metadata: message.metadata.as_ref().map(|m| m.to_string()),
            next_attempt_at: Some(due),
            lease_owner: None,
            lease_until: None,
            counted: Counted::default(),
            callbacks_seen: 0,
            event_seq: 0,
            details: None,
            created_at: at,
            lifecycle: Lifecycle::pending(at),
        };
        if let Some(key) = &message.idempotency_key {
            self.by_key.insert(key.clone(), record.id);
        }
        self.changes.inserted.push((record.id, message.idempotency_key.clone()));
        self.changes.new_ids.insert(record.id);
        self.log(record.id, None, MessageStatus::Pending, true, None, StatusSource::Api, detail, at);
        self.messages.insert(record.id, record.clone());
        Reply::Inserted(Box::new(record), true)
    }

    fn claim(&mut self, pick: &Pick, worker: &str, lease: Duration, window_check: bool) -> Vec<ClaimResult> {
        let (ids, due_or_not): (Vec<MessageId>, bool) = match pick {
            Pick::Next(n) => (self.picked.by_ref().take(*n).collect(), false),
            Pick::Ids(ids) => (ids.clone(), false),
            Pick::Now(id) => (vec![*id], true),
        };
        ids.into_iter().map(|id| self.claim_one(id, worker, lease, due_or_not, window_check)).collect()
    }

    fn claim_one(&mut self, id: MessageId, worker: &str, lease: Duration, due_or_not: bool, window_check: bool) -> ClaimResult {
        let now = self.now;
        let Some(m) = self.messages.get(&id) else { return ClaimResult::Done { id } };
        if !m.status().is_sendable() {
            return ClaimResult::Done { id };
        }
        if let Some(at) = m.next_attempt_at.filter(|at| *at > now && !due_or_not) {
            return ClaimResult::NotDue { id, at };
        }
        if let Some(until) = m.lease_until.filter(|until| *until >= now) {
            return ClaimResult::Leased { id, until };
        }
        // An attempt that may have reached Twilio is asked about first (`Finish::Lost` expires it).
        if !self.unresolved.contains_key(&id) && self.expire_if_due(id).is_some() {
            return ClaimResult::Done { id };
        }
        let m = &self.messages[&id];
        if self.contacts.get(&m.to).is_some_and(|c| c.opted_out.0) {
            let result = AttemptResult {
                error_code: Some(UNSUBSCRIBED),
                error_message: Some(describe(UNSUBSCRIBED).to_owned()),
                ..Default::default()
            };
            self.fail(id, &result, MessageStatus::Failed, "not sent: the recipient opted out".into(), now);
            return ClaimResult::Done { id };
        }
        // The window may have closed since the message was accepted (scheduled, or retried).
        if window_check && m.content_sid.is_none() && !self.unresolved.contains_key(&id) {
            let last_inbound_at = self.contacts.get(&m.to).and_then(|c| c.last_inbound_at);
            if !window_open(last_inbound_at, now) {
                let outside = outside_window(last_inbound_at);
                let status = m.status();
                let Some(fallback) = m.fallback_content_sid.clone() else {
                    let result = AttemptResult {
                        error_code: Some(OUTSIDE_WINDOW),
                        error_message: Some(describe(OUTSIDE_WINDOW).to_owned()),
                        ..Default::default()
                    };
                    self.fail(id, &result, MessageStatus::Failed, format!("not sent: {outside} and it has no fallback template"), now);
                    return ClaimResult::Done { id };
                };
                let m = self.touch(id).expect("looked up above");
                m.content_sid = Some(fallback.clone());
                m.content_variables = m.fallback_content_variables.clone();
                let detail = format!("{outside}: sent as its fallback template {fallback}");
                self.log(id, Some(status), status, false, None, StatusSource::Worker, Some(detail), now);
            }
        }
        let m = self.touch(id).expect("looked up above");
        m.lease_owner = Some(worker.to_owned());
        m.lease_until = Some(now + millis(lease));
        let message = m.clone();
        ClaimResult::Claimed(Box::new(Claim { message, unresolved: self.unresolved.get(&id).cloned() }))
    }

    fn claim_polls(&mut self, pick: &PollPick) -> Vec<PollTarget> {
        let mut targets = Vec::new();
        let now = self.now;
        while targets.len() < pick.limit {
            let Some(id) = self.polled.next() else { break };
            let m = &self.messages[&id];
            // An earlier command of this batch may have settled it.
            let (Some(sid), true) = (m.message_sid.clone(), MessageStatus::UNSETTLED.contains(&m.status())) else { continue };
            let next = pick.next_poll(m.lifecycle.last_status_at, now);
            self.changes.polls.push((id, next.unwrap_or(0)));
            // Past the horizon it is asked about one last time.
            targets.push(PollTarget { id, sid, status: m.status(), last_status_at: m.lifecycle.last_status_at });
        }
        targets
    }

    /// A status the poller learned from Twilio: applied (and logged) only if it is news — a
    /// step forward that no callback has reported — so asking again and again logs nothing.
    fn polled(&mut self, id: MessageId, report: &StatusReport) -> ApplyOutcome {
        let m = &self.messages[&id];
        let current = m.status();
        if m.callbacks_seen & report.event.status.bit() == 0 && !m.lifecycle.apply(&report.event).status_changed {
            return ApplyOutcome::Ignored { current };
        }
        // Marked as reported, so that the callback, should it come late, is a duplicate.
        self.report_once(id, &report.event, StatusSource::Poll, None, report.error_message.clone())
            .unwrap_or(ApplyOutcome::Duplicate { current })
    }

    fn status(&mut self, report: &StatusReport) -> Result<ApplyOutcome, StoreError> {
        let by_id = report.id.filter(|id| {
            self.messages.get(id).is_some_and(|m| m.message_sid.as_ref().is_none_or(|sid| *sid == report.sid))
                && self.by_sid.get(&report.sid).is_none_or(|owner| owner == id)
        });
        let Some(id) = by_id.or_else(|| self.by_sid.get(&report.sid).copied()) else {
            return Ok(self.keep_unmatched(report));
        };
        if self.retired_sid(id, &report.sid) {
            return Ok(ApplyOutcome::Duplicate { current: MessageStatus::Retrying });
        }
        if self.messages[&id].message_sid.is_none() {
            self.touch(id).expect("present").message_sid = Some(report.sid.clone());
            self.by_sid.insert(report.sid.clone(), id);
        }
        if report.source == StatusSource::Poll {
            return Ok(self.polled(id, report));
        }
        if report.source != StatusSource::Callback {
            return Ok(self.apply_event(id, &report.event, report.source, None, report.error_message.clone()));
        }
        let current = self.messages[&id].status();
        let mut outcome = match self.report_once(id, &report.event, StatusSource::Callback, None, report.error_message.clone()) {
            Some(outcome) => outcome,
            None => return Ok(ApplyOutcome::Duplicate { current }),
        };
        // Callbacks that came before this one named the message by its SID.
        for early in self.unmatched.remove(&report.sid).unwrap_or_default() {
            self.changes.unmatched_consumed.insert(report.sid.clone());
            let event = StatusEvent { status: early.status, at: early.received_at, error_code: early.error_code };
            if let Some(next) =
                self.report_once(id, &event, StatusSource::Callback, Some("arrived before the SID was recorded".into()), None)
            {
                outcome = next;
            }
        }
        Ok(outcome)
    }

    /// Applies a status Twilio reported (a callback, or a poll's answer) once: `None` if a report
    /// of this status was already applied.
    pub(super) fn report_once(
        &mut self,
        id: MessageId,
        event: &StatusEvent,
        source: StatusSource,
        detail: Option<String>,
        error_message: Option<String>,
    ) -> Option<ApplyOutcome> {
        let bit = event.status.bit();
        let m = self.messages.get(&id)?;
        if m.callbacks_seen & bit != 0 {
            return None;
        }
        self.touch(id)?.callbacks_seen |= bit;
        if let Some(resend) = self.resend_for(id, event) {
            return Some(self.resend(id, event, source, resend));
        }
        let outcome = self.apply_event(id, event, source, detail, error_message);
        if matches!(outcome, ApplyOutcome::Applied { current: MessageStatus::Failed | MessageStatus::Undelivered, .. }) {
            self.recipient_refused(id, event.error_code, event.at);
        }
        Some(outcome)
    }

    fn keep_unmatched(&mut self, report: &StatusReport) -> ApplyOutcome {
        let kept = self.unmatched.entry(report.sid.clone()).or_default();
        if kept.iter().all(|c| c.status != report.event.status) {
            let callback = UnmatchedCallback {
                message_sid: report.sid.clone(),
                status: report.event.status,
                error_code: report.event.error_code,
                received_at: report.event.at,
            };
            kept.push(callback.clone());
            self.changes.unmatched_new.push(callback);
        }
        ApplyOutcome::Unmatched
    }

    fn inbound(&mut self, message: &InboundMessage, opt: OptChange) -> Reply {
        let previous = self.contacts.get(&message.from).cloned();
        if let Some(existing) = self.by_sid.get(&message.sid) {
            let contact = previous.unwrap_or_else(|| Contact::blank(&message.from));
            return Reply::Received(InboundOutcome { message_id: *existing, duplicate: true, contact, handler_event: None });
        }
        let at = message.received_at;
        // The contact wrote to this number: a reply from the pool goes out from it.
        self.last_senders.insert(message.from.clone(), Origin::Number(message.to.clone()));
        let record = MessageRecord {
            id: MessageId::new(),
            message_sid: Some(message.sid.clone()),
            direction: Direction::Inbound,
            from: Origin::Number(message.from.clone()),
            to: message.to.clone(),
            body: message.body.clone(),
            media_urls: message.media_urls.clone(),
            content_sid: None,
            content_variables: None,
            fallback_content_sid: None,
            fallback_content_variables: None,
            error_message: None,
            priority: Priority::DEFAULT,
            attempts: 0,
            attempt_base: 0,
            validity_s: MAX_VALIDITY_S,
            expires_at: None,
            reference: None,
            metadata: None,
            next_attempt_at: None,
            lease_owner: None,
            lease_until: None,
            counted: Counted::default(),
            callbacks_seen: 0,
            event_seq: 0,
            details: message.details.to_column(),
            created_at: at,
            lifecycle: Lifecycle { status: MessageStatus::Received, ..Lifecycle::pending(at) },
        };
        let id = record.id;
        self.by_sid.insert(message.sid.clone(), id);
        self.messages.insert(id, record);
        self.changes.inserted.push((id, None));
        self.changes.new_ids.insert(id);
        let change = ContactChange {
            phone: message.from.clone(),
            profile_name: message.profile_name.clone(),
            wa_id: message.wa_id.clone(),
            at,
            inbound_at: Some(at),
            opt,
            suppress: None,
        };
        let was_opted_out = previous.as_ref().is_some_and(|c| c.opted_out.0);
        let contact = merge_contact(previous, &change);
        self.contacts.insert(message.from.clone(), contact.clone());
        self.changes.contacts.push(change);
        let handler_event = self.emit_inbound_events(id, message, opt, was_opted_out);
        if opt == OptChange::OptOut {
            // What waits for this contact is withdrawn; a message being sent right now (or whose
            // last attempt may have reached Twilio) is left to the claim's opt-out check.
            for pending in self.sendable_to.remove(&message.from).unwrap_or_default() {
                self.cancel(pending, at, "canceled: the recipient opted out (STOP)");
            }
        }
        Reply::Received(InboundOutcome { message_id: id, duplicate: false, contact, handler_event })
    }

    /// Applies `event` to message `id`: the state machine, the row, the status log and the
    /// metrics.
    pub(super) fn apply_event(
        &mut self,
        id: MessageId,
        event: &StatusEvent,
        source: StatusSource,
        detail: Option<String>,
        error_message: Option<String>,
    ) -> ApplyOutcome {
        let m = self.messages.get_mut(&id).expect("applied to a loaded message");
        let before = m.lifecycle.clone();
        let step = before.apply(event);
        if step.status_changed && step.next.status.is_terminal() {
            m.error_message = error_message.or_else(|| step.next.error_code.map(|code| describe(code).to_owned()));
        }
        self.move_lifecycle(id, step.next.clone());
        let detail = detail.or_else(|| (!step.status_changed).then(|| format!("kept {}: not a step forward", before.status)));
        self.log(id, Some(before.status), event.status, step.status_changed, event.error_code, source, detail, event.at);
        if step.status_changed {
            ApplyOutcome::Applied { previous: before.status, current: step.next.status }
        } else {
            ApplyOutcome::Ignored { current: step.next.status }
        }
    }

    /// Gives message `id` lifecycle `next` and moves its rollup counts accordingly (nothing, if
    /// neither the lifecycle nor what it is counted in changes).
    pub(super) fn move_lifecycle(&mut self, id: MessageId, next: Lifecycle) {
        let m = self.messages.get_mut(&id).expect("moved a loaded message");
        let (delta, counted) = transition(&m.lifecycle, m.counted, &next);
        if next == m.lifecycle && counted == m.counted {
            return;
        }
        m.lifecycle = next;
        m.counted = counted;
        self.changes.rollups.add(&self.shard, m, &delta);
        if !self.changes.new_ids.contains(&id) {
            self.changes.updated.insert(id);
        }
    }

    /// The message, marked as changed (unless it is new in this batch).
    pub(super) fn touch(&mut self, id: MessageId) -> Option<&mut MessageRecord> {
        if !self.changes.new_ids.contains(&id) {
            self.changes.updated.insert(id);
        }
        self.messages.get_mut(&id)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn log(
        &mut self,
        message_id: MessageId,
        previous_status: Option<MessageStatus>,
        new_status: MessageStatus,
        applied: bool,
        error_code: Option<i64>,
        source: StatusSource,
        detail: Option<String>,
        occurred_at: UnixMillis,
    ) {
        self.changes.log.push(LogRow { message_id, previous_status, new_status, applied, error_code, source, detail, occurred_at });
    }

    /// New messages as inserted rows, with their idempotency key and stored media column.
    pub fn inserted_rows(&self) -> impl Iterator<Item = (&MessageRecord, Option<&str>, Option<String>)> {
        self.changes.inserted.iter().map(|(id, key)| {
            let m = &self.messages[id];
            (m, key.as_deref(), media_column(&m.media_urls))
        })
    }

    /// Changed messages (not new ones), in id order.
    pub fn updated_rows(&self) -> impl Iterator<Item = &MessageRecord> {
        self.changes.updated.iter().filter(|id| !self.changes.new_ids.contains(id)).map(|id| &self.messages[id])
    }
}

pub(super) use crate::domain::clock::duration_ms as millis;
