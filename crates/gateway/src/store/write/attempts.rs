//! The worker's side of a batch: beginning an attempt and recording what it came to.

use std::time::Duration;

use super::batch::{ContactChange, merge_contact};
use super::command::{ApplyOutcome, Finish, OperatorOutcome};
use super::plan::{Plan, millis};
use crate::domain::error_codes::{UNSUBSCRIBED, VALIDITY_EXPIRED, describe, suppresses};
use crate::domain::{
    AttemptOutcome, AttemptResult, MessageId, MessageSid, MessageStatus, OptChange, Origin, StatusEvent, StatusSource, UnixMillis,
};
use crate::store::error::StoreError;
use crate::store::records::AttemptRecord;

impl Plan {
    pub(super) fn begin_attempt(&mut self, id: MessageId, worker: &str, lease: Duration, at: UnixMillis) -> Option<i64> {
        let now = self.now;
        let m = self.messages.get(&id)?;
        let held = m.lease_owner.as_deref() == Some(worker) && m.lease_until.is_some_and(|until| until > now);
        if !held || !m.status().is_sendable() {
            return None;
        }
        let m = self.touch(id)?;
        m.attempts += 1;
        m.lease_until = Some(now + millis(lease));
        let attempt = m.attempts;
        self.unresolved.remove(&id);
        self.changes.attempts_started.push(AttemptRecord {
            message_id: id,
            attempt,
            worker: worker.to_owned(),
            started_at: at,
            finished_at: None,
            outcome: AttemptOutcome::InFlight,
            http_status: None,
            error_code: None,
            error_message: None,
            message_sid: None,
        });
        Some(attempt)
    }

    pub(super) fn finish(&mut self, id: MessageId, worker: &str, outcome: &Finish, at: UnixMillis) -> Result<ApplyOutcome, StoreError> {
        let Some(m) = self.messages.get(&id) else { return Ok(ApplyOutcome::Skipped) };
        let (sendable, held) = (m.status().is_sendable(), m.lease_owner.as_deref() == Some(worker));
        let current = m.status();
        Ok(match outcome {
            Finish::Accepted { attempt, sid, outcome, source } => self.accepted(id, *attempt, sid, *outcome, *source, at)?,
            Finish::Retry { attempt, result, .. } if !sendable || !held => {
                // A status callback has already shown that this attempt reached Twilio.
                self.reconciled(id, *attempt, result, held, at);
                ApplyOutcome::Ignored { current }
            }
            retry @ Finish::Retry { .. } => self.retry(id, retry, at),
            Finish::Fail { attempt, status, result, detail } if sendable => {
                // A dead letter's last attempt failed in a way worth retrying; every other end is final.
                let outcome = if *status == MessageStatus::DeadLettered { AttemptOutcome::Retryable } else { AttemptOutcome::Permanent };
                if let Some(attempt) = attempt {
                    self.finish_attempt(id, *attempt, outcome, result, None, at);
                }
                self.recipient_refused(id, result.error_code, at);
                self.fail(id, result, *status, detail.clone(), at)
            }
            Finish::Fail { attempt, result, .. } => {
                if let Some(attempt) = attempt {
                    self.reconciled(id, *attempt, result, true, at);
                }
                ApplyOutcome::Ignored { current }
            }
            Finish::Lost { attempt, result } => {
                self.finish_attempt(id, *attempt, AttemptOutcome::Lost, result, None, at);
                // Twilio never had it: if its time ran out meanwhile, this is where it ends.
                if sendable && let Some(expired) = self.expire_if_due(id) {
                    return Ok(expired);
                }
                ApplyOutcome::Ignored { current }
            }
            Finish::Release { not_before } => {
                if held {
                    self.release(id);
                    if let (Some(at), true) = (not_before, sendable) {
                        self.touch(id).expect("present").next_attempt_at = Some(*at);
                    }
                }
                ApplyOutcome::Ignored { current }
            }
        })
    }

    pub(super) fn accepted(
        &mut self,
        id: MessageId,
        attempt: i64,
        sid: &MessageSid,
        outcome: AttemptOutcome,
        source: StatusSource,
        at: UnixMillis,
    ) -> Result<ApplyOutcome, StoreError> {
        if self.by_sid.get(sid).is_some_and(|owner| *owner != id) {
            return Err(StoreError::Corrupt(format!("SID {sid} is already recorded for another message than {id}")));
        }
        let m = self.touch(id).expect("checked by the caller");
        // A message being sent again (see `resends`) keeps its old SID until now.
        let retired = if m.status() == MessageStatus::Retrying && m.message_sid.as_ref().is_some_and(|old| old != sid) {
            m.message_sid.replace(sid.clone())
        } else {
            None
        };
        if m.message_sid.is_none() {
            m.message_sid = Some(sid.clone());
        }
        m.lease_owner = None;
        m.lease_until = None;
        m.next_attempt_at = None;
        if m.status().is_sendable() {
            m.lifecycle.error_code = None;
            m.error_message = None;
        }
        let recorded_sid = m.message_sid.clone();
        // Through a Messaging Service Twilio answers `accepted` (it has yet to pick the number)
        // and sends no callback for it; from a number, `queued`.
        let status = if matches!(m.from, Origin::Service(_)) { MessageStatus::Accepted } else { MessageStatus::Queued };
        if let Some(old) = retired {
            self.by_sid.remove(&old);
        }
        self.by_sid.insert(sid.clone(), id);
        let result = AttemptResult { http_status: Some(201), ..Default::default() };
        self.finish_attempt(id, attempt, outcome, &result, recorded_sid, at);
        let event = StatusEvent { status, at, error_code: None };
        let mut applied = self.apply_event(id, &event, source, None, None);
        for early in self.unmatched.remove(sid).unwrap_or_default() {
            self.changes.unmatched_consumed.insert(sid.clone());
            let event = StatusEvent { status: early.status, at: early.received_at, error_code: early.error_code };
            if let Some(next) =
                self.report_once(id, &event, StatusSource::Callback, Some("arrived before the SID was recorded".into()), None)
            {
                applied = next;
            }
        }
        Ok(applied)
    }

    /// What the error that ended message `id` (a refused create, or a callback's code) says about
    /// its recipient: unsubscribed (21610) opts the contact out, as its STOP would have, until it
    /// writes START; a number that cannot receive (63024, 21211, 21614) is suppressed, until it
    /// writes or a send is forced.
    pub(super) fn recipient_refused(&mut self, id: MessageId, code: Option<i64>, at: UnixMillis) {
        let (opt, suppress) = match code {
            Some(UNSUBSCRIBED) => (OptChange::OptOut, None),
            Some(code) if suppresses(code) => (OptChange::None, Some(code)),
            _ => return,
        };
        let phone = self.messages[&id].to.clone();
        let change = ContactChange { phone: phone.clone(), profile_name: None, wa_id: None, at, inbound_at: None, opt, suppress };
        let contact = merge_contact(self.contacts.get(&phone).cloned(), &change);
        self.contacts.insert(phone, contact);
        self.changes.contacts.push(change);
    }

    /// A [`Finish::Retry`] of a held, sendable message: `retrying`, due again at its `next_at`.
    fn retry(&mut self, id: MessageId, retry: &Finish, at: UnixMillis) -> ApplyOutcome {
        let &Finish::Retry { attempt, outcome, ref result, next_at, throttled } = retry else {
            return ApplyOutcome::Skipped;
        };
        self.finish_attempt(id, attempt, outcome, result, None, at);
        let m = self.touch(id).expect("checked by the caller");
        if throttled {
            // Not counted against the allowance: the allowance is attempts past the base.
            m.attempt_base += 1;
        }
        let previous = m.status();
        m.lifecycle.status = MessageStatus::Retrying;
        m.lifecycle.last_status_at = at;
        m.lifecycle.error_code = result.error_code;
        m.error_message = result.error_message.clone();
        m.next_attempt_at = Some(next_at);
        m.lease_owner = None;
        m.lease_until = None;
        let error = result.error_message.as_deref().unwrap_or("no answer");
        let detail = if throttled {
            format!("attempt {attempt}: the sender is throttled, not counted against the attempts allowed: {error}")
        } else {
            format!("attempt {attempt}: {error}")
        };
        self.log(id, Some(previous), MessageStatus::Retrying, true, result.error_code, StatusSource::Worker, Some(detail), at);
        ApplyOutcome::Applied { previous, current: MessageStatus::Retrying }
    }

    /// Ends a sendable message as `status` (`failed`, `dead_lettered`, `expired`, `canceled`; the
    /// attempt is already finished by the caller, if any), logged from the worker, or from the
    /// API for a cancel.
    pub(super) fn fail(
        &mut self,
        id: MessageId,
        result: &AttemptResult,
        status: MessageStatus,
        detail: String,
        at: UnixMillis,
    ) -> ApplyOutcome {
        let m = self.touch(id).expect("checked by the caller");
        m.lease_owner = None;
        m.lease_until = None;
        m.next_attempt_at = None;
        m.error_message = result.error_message.clone();
        let event = StatusEvent { status, at, error_code: result.error_code };
        let source = if status == MessageStatus::Canceled { StatusSource::Api } else { StatusSource::Worker };
        self.apply_event(id, &event, source, Some(detail), result.error_message.clone())
    }

    /// Ends a sendable message `expired` (30036) if its validity period is over by the batch's
    /// clock; `None` if it is not.
    pub(super) fn expire_if_due(&mut self, id: MessageId) -> Option<ApplyOutcome> {
        let now = self.now;
        let m = self.messages.get(&id).filter(|m| m.expires_at.is_some_and(|expires| now >= expires))?;
        let detail = format!("not sent within its validity period of {} s", m.validity_s);
        let result = AttemptResult {
            error_code: Some(VALIDITY_EXPIRED),
            error_message: Some(describe(VALIDITY_EXPIRED).to_owned()),
            ..Default::default()
        };
        Some(self.fail(id, &result, MessageStatus::Expired, detail, now))
    }

    /// An operator's redrive of a dead-lettered message: `pending`, due at `at`, with a fresh
    /// allowance of attempts (numbering goes on, so the earlier attempts stay in its history), its
    /// failure taken out of the metrics.
    pub(super) fn redrive(&mut self, id: MessageId, at: UnixMillis) -> OperatorOutcome {
        let Some(m) = self.messages.get(&id) else { return OperatorOutcome::NotFound };
        let current = m.status();
        if current != MessageStatus::DeadLettered {
            return OperatorOutcome::NotApplicable { current };
        }
        // Dead-lettered after Twilio was asked and had no record; should it have turned up since
        // (a callback, a late answer naming a SID), sending again could send twice.
        if m.message_sid.is_some() || m.callbacks_seen != 0 {
            return OperatorOutcome::Unsafe { current };
        }
        let after = m.lifecycle.redriven(at);
        self.move_lifecycle(id, after);
        let m = self.messages.get_mut(&id).expect("present");
        m.error_message = None;
        m.attempt_base = m.attempts;
        m.next_attempt_at = Some(at);
        m.expires_at = Some(at.saturating_add(m.validity_s.saturating_mul(1000)));
        m.lease_owner = None;
        m.lease_until = None;
        let detail = format!("redriven after {} attempts", m.attempts);
        let record = Box::new(m.clone());
        self.log(id, Some(current), MessageStatus::Pending, true, None, StatusSource::Api, Some(detail), at);
        OperatorOutcome::Done(record)
    }

    /// Withdraws a message Twilio does not have yet (sendable, not held by a live worker, no
    /// attempt whose outcome is unknown): `canceled`, logged from `api` with `detail`.
    pub(super) fn cancel(&mut self, id: MessageId, at: UnixMillis, detail: &str) -> OperatorOutcome {
        let now = self.now;
        let Some(m) = self.messages.get(&id) else { return OperatorOutcome::NotFound };
        let current = m.status();
        if !current.is_sendable() {
            return OperatorOutcome::NotApplicable { current };
        }
        if m.lease_until.is_some_and(|until| until >= now) || self.unresolved.contains_key(&id) {
            return OperatorOutcome::Unsafe { current };
        }
        let result = AttemptResult::default();
        self.fail(id, &result, MessageStatus::Canceled, detail.to_owned(), at);
        OperatorOutcome::Done(Box::new(self.messages[&id].clone()))
    }

    pub(super) fn finish_attempt(
        &mut self,
        id: MessageId,
        attempt: i64,
        outcome: AttemptOutcome,
        result: &AttemptResult,
        sid: Option<MessageSid>,
        at: UnixMillis,
    ) {
        self.changes.attempts_finished.push(AttemptRecord {
            message_id: id,
            attempt,
            worker: String::new(),
            started_at: 0,
            finished_at: Some(at),
            outcome,
            http_status: result.http_status,
            error_code: result.error_code,
            error_message: result.error_message.clone(),
            message_sid: sid,
        });
    }

    /// An attempt reported as failed whose message Twilio has after all (a callback came).
    pub(super) fn reconciled(&mut self, id: MessageId, attempt: i64, result: &AttemptResult, release: bool, at: UnixMillis) {
        let sid = self.messages[&id].message_sid.clone();
        self.finish_attempt(id, attempt, AttemptOutcome::Reconciled, result, sid, at);
        if release {
            self.release(id);
        }
    }

    pub(super) fn release(&mut self, id: MessageId) {
        if let Some(m) = self.touch(id) {
            m.lease_owner = None;
            m.lease_until = None;
        }
    }
}
