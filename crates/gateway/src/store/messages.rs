//! Messages: storing a new one, reading, listing, and their status history and attempts.

use super::db::{Store, on_pool};
use super::error::StoreError;
use super::records::{AttemptRecord, MessageRecord, StatusLogEntry};
use super::write::command::{Command, Reply};
use crate::domain::{Direction, MessageId, MessageSid, MessageStatus, NewOutboundMessage, PhoneNumber, Route, UnixMillis};

/// Filters for listing messages; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<MessageStatus>,
    /// Only this direction.
    pub direction: Option<Direction>,
    /// Only messages to or from this number.
    pub phone: Option<PhoneNumber>,
    /// Created at or after.
    pub from: Option<UnixMillis>,
    /// Created before.
    pub to: Option<UnixMillis>,
    /// Only this application reference.
    pub reference: Option<String>,
    /// Continue after this (created_at, id) position, newest first.
    pub after: Option<(UnixMillis, MessageId)>,
    /// Page size.
    pub limit: i64,
}

impl Store {
    /// Stores a new outbound message as `pending`, from the sender `route` gives it, and logs its creation. With an
    /// idempotency key already used in the last 24 hours, nothing is stored and the earlier
    /// message is returned with `false`; an older use of the key is released. With the window
    /// check on, free-form content for a contact who has not written in the last 24 hours is
    /// stored as its fallback template, or refused; so is a message to a suppressed recipient
    /// unless forced ([`StoreError::Refused`]).
    pub async fn insert_outbound(
        &self,
        message: NewOutboundMessage,
        route: impl Into<Route>,
        at: UnixMillis,
    ) -> Result<(MessageRecord, bool), StoreError> {
        match self.submit(Command::Insert { message, route: route.into(), at, window_check: self.window_check() }).await? {
            Reply::Inserted(record, created) => Ok((*record, created)),
            Reply::Refused(refusal) => Err(StoreError::Refused(refusal)),
            other => Err(unexpected(&other)),
        }
    }

    /// One message by id.
    pub async fn message(&self, id: MessageId) -> Result<Option<MessageRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM messages WHERE id = $1").bind(id).fetch_optional(pool).await?))
    }

    /// One message by Twilio SID.
    pub async fn message_by_sid(&self, sid: &MessageSid) -> Result<Option<MessageRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM messages WHERE message_sid = $1").bind(sid).fetch_optional(pool).await?))
    }

    /// Messages matching `filter`, newest first.
    pub async fn list_messages(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
        // Each optional filter is written so that a NULL argument disables it, keeping one SQL text.
        const SQL: &str = "SELECT * FROM messages WHERE \
             ($1 IS NULL OR status = $1) AND ($2 IS NULL OR direction = $2) \
             AND ($3 IS NULL OR to_addr = $3 OR from_addr = $3) \
             AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
             AND ($6 IS NULL OR reference = $6) \
             AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8)) \
             ORDER BY created_at DESC, id DESC LIMIT $9";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(filter.status)
            .bind(filter.direction)
            .bind(filter.phone.clone())
            .bind(filter.from)
            .bind(filter.to)
            .bind(filter.reference.clone())
            .bind(filter.after.map(|(at, _)| at))
            .bind(filter.after.map(|(_, id)| id.to_string()).unwrap_or_default())
            .bind(filter.limit)
            .fetch_all(pool)
            .await?))
    }

    /// A message's status history, oldest first.
    pub async fn status_history(&self, id: MessageId) -> Result<Vec<StatusLogEntry>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM message_status_log WHERE message_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(pool)
            .await?))
    }

    /// How many *other* outbound messages from `message`'s sender to its recipient, with the same
    /// body (or none, for templates and media), have no SID and an attempt started since `since`
    /// whose outcome is not known (`in_flight`, `unknown`): each could be the one Twilio created a
    /// found message for, so reconciling must not pick one of them by guess.
    pub async fn lost_attempt_rivals(&self, message: &MessageRecord, since: UnixMillis) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COUNT(DISTINCT m.id) FROM messages m JOIN send_attempts a ON a.message_id = m.id \
             WHERE m.direction = 'outbound' AND m.to_addr = $1 AND m.from_addr = $2 AND m.message_sid IS NULL \
             AND (m.body = $3 OR (m.body IS NULL AND $3 IS NULL)) AND m.id <> $4 \
             AND a.outcome IN ('in_flight', 'unknown') AND a.started_at >= $5";
        Ok(on_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(message.to.clone())
            .bind(message.from.clone())
            .bind(message.body.clone())
            .bind(message.id)
            .bind(since)
            .fetch_one(pool)
            .await?))
    }

    /// Every send attempt of a message, oldest first.
    pub async fn attempts(&self, id: MessageId) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM send_attempts WHERE message_id = $1 ORDER BY attempt")
            .bind(id)
            .fetch_all(pool)
            .await?))
    }
}

/// A reply of the wrong kind: a bug in the writer.
pub(super) fn unexpected(reply: &Reply) -> StoreError {
    StoreError::Corrupt(format!("the writer answered {reply:?} to another command"))
}
