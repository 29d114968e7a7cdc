//! The outbox: the events a batch reports are decided with its other changes and written in its
//! transaction (an event exists exactly when its change is committed), one delivery row per
//! endpoint that wants it. The dispatcher (`service::dispatch`) delivers them.

use serde_json::{Value, json};

use super::batch::EventRow;
use super::plan::Plan;
use crate::domain::{
    EventType, HANDLERS_ENDPOINT, InboundMessage, MessageId, MessageStatus, OptChange, UnixMillis, new_event_id, rfc3339_millis,
};
use crate::store::records::MessageRecord;

/// The Standard Webhooks envelope: `type`, `timestamp`, `data`.
fn envelope(t: EventType, at: UnixMillis, data: Value) -> String {
    json!({ "type": t.as_str(), "timestamp": rfc3339_millis(at), "data": data }).to_string()
}

fn metadata(m: &MessageRecord) -> Value {
    m.metadata.as_deref().and_then(|text| serde_json::from_str(text).ok()).unwrap_or(Value::Null)
}

fn time(at: Option<UnixMillis>) -> Value {
    at.map_or(Value::Null, |at| Value::String(rfc3339_millis(at)))
}

/// What a message's status events say about it.
fn message_data(m: &MessageRecord, seq: i64) -> serde_json::Map<String, Value> {
    let l = &m.lifecycle;
    let value = json!({
        "message_id": m.id.to_string(),
        "message_sid": m.message_sid.as_ref().map(|s| s.as_str()),
        "sequence": seq,
        "direction": m.direction.as_str(),
        "from": m.from.as_str(),
        "to": m.to.as_e164(),
        "reference": m.reference,
        "metadata": metadata(m),
        "attempts": m.attempts,
        "timestamps": {
            "created_at": rfc3339_millis(m.created_at),
            "queued_at": time(l.queued_at),
            "sent_at": time(l.sent_at),
            "delivered_at": time(l.delivered_at),
            "read_at": time(l.read_at),
            "failed_at": time(l.failed_at),
        },
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("built as an object"),
    }
}

impl Plan {
    /// Stores event `t` of message `id` for every endpoint that wants it, numbering it in the
    /// message's sequence; `data` adds the event's own fields to the message's.
    fn emit(
        &mut self,
        id: MessageId,
        t: EventType,
        at: UnixMillis,
        data: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> Option<&EventRow> {
        let endpoints = self.routes.wanting(t);
        if endpoints.is_empty() {
            return None;
        }
        let m = self.touch(id)?;
        m.event_seq += 1;
        let seq = m.event_seq;
        let mut fields = message_data(m, seq);
        data(&mut fields);
        let row = EventRow {
            id: new_event_id(),
            event_type: t,
            message_id: Some(id),
            seq,
            payload: envelope(t, at, Value::Object(fields)),
            created_at: self.now.max(at),
            endpoints,
        };
        self.changes.events.push(row);
        self.changes.events.last()
    }

    /// The events of every status change the batch logged: `message.status_changed`, and
    /// `message.failed` / `message.dead_lettered` for those endings.
    pub(super) fn emit_status_events(&mut self) {
        let r = &self.routes;
        if ![EventType::MessageStatusChanged, EventType::MessageFailed, EventType::MessageDeadLettered].into_iter().any(|t| r.wants(t)) {
            return;
        }
        let log = std::mem::take(&mut self.changes.log);
        for row in &log {
            let Some(previous) = row.previous_status.filter(|p| row.applied && *p != row.new_status) else { continue };
            let fill = |fields: &mut serde_json::Map<String, Value>, m_error: Option<String>| {
                fields.insert("previous_status".into(), previous.as_str().into());
                fields.insert("status".into(), row.new_status.as_str().into());
                fields.insert("error_code".into(), row.error_code.into());
                fields.insert("error_message".into(), m_error.into());
                fields.insert("source".into(), row.source.as_str().into());
                fields.insert("detail".into(), row.detail.clone().into());
                fields.insert("occurred_at".into(), rfc3339_millis(row.occurred_at).into());
            };
            let error = self.messages.get(&row.message_id).and_then(|m| m.error_message.clone()).filter(|_| row.new_status.is_terminal());
            self.emit(row.message_id, EventType::MessageStatusChanged, row.occurred_at, |f| fill(f, error.clone()));
            let ending = match row.new_status {
                MessageStatus::Failed | MessageStatus::Undelivered => Some(EventType::MessageFailed),
                MessageStatus::DeadLettered => Some(EventType::MessageDeadLettered),
                _ => None,
            };
            if let Some(t) = ending {
                self.emit(row.message_id, t, row.occurred_at, |f| fill(f, error.clone()));
            }
        }
        self.changes.log = log;
    }

    /// The events of a new incoming message: `message.received`, and a consent change if its
    /// keyword changed the contact's standing. Returns the id of `message.received` if the
    /// gateway's own handlers are to run for it.
    pub(super) fn emit_inbound_events(
        &mut self,
        id: MessageId,
        message: &InboundMessage,
        opt: OptChange,
        was_opted_out: bool,
    ) -> Option<String> {
        let at = message.received_at;
        let received = self.emit(id, EventType::MessageReceived, at, |f| {
            f.insert("body".into(), message.body.clone().into());
            f.insert("media_urls".into(), message.media_urls.clone().into());
            f.insert("profile_name".into(), message.profile_name.clone().into());
            f.insert("wa_id".into(), message.wa_id.clone().into());
            f.insert("received_at".into(), rfc3339_millis(at).into());
            if let Ok(Value::Object(details)) = serde_json::to_value(&message.details) {
                f.extend(details);
            }
        });
        let handler_event = received.filter(|e| e.endpoints.iter().any(|d| d == HANDLERS_ENDPOINT)).map(|e| e.id.clone());
        let changed = match opt {
            OptChange::OptOut if !was_opted_out => Some(EventType::ContactOptedOut),
            OptChange::OptIn if was_opted_out => Some(EventType::ContactOptedIn),
            _ => None,
        };
        if let Some(t) = changed {
            self.emit(id, t, at, |f| {
                f.insert("phone".into(), message.from.as_e164().into());
                f.insert("keyword".into(), message.body.as_deref().map(str::trim).into());
                f.insert("occurred_at".into(), rfc3339_millis(at).into());
            });
        }
        handler_event
    }
}

#[cfg(test)]
mod tests {
    use super::super::routes::EventRoutes;
    use crate::domain::{EventType, EventTypes};

    #[test]
    fn routes_name_the_endpoints_that_want_a_type() {
        let routes = EventRoutes {
            endpoints: vec![("a".into(), EventTypes::all()), ("b".into(), EventTypes::none().with(EventType::MessageReceived))],
        };
        assert_eq!(routes.wanting(EventType::MessageReceived), ["a", "b"]);
        assert_eq!(routes.wanting(EventType::MessageFailed), ["a"]);
        assert!(!EventRoutes::default().wants(EventType::MessageFailed));
    }
}
