//! Messages: inserting, reading, listing, and their status history.

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use super::rows::{direction, int, opt_int, opt_status, opt_text, status, text};
use super::{Store, StoreError};
use crate::domain::status::{Lifecycle, UnixMillis};
use crate::domain::{Content, Direction, MessageId, MessageStatus, NewOutboundMessage, PhoneNumber};

/// A stored message, inbound or outbound.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// Our id.
    pub id: MessageId,
    /// Twilio's SID, once known.
    pub message_sid: Option<String>,
    /// Outbound or inbound.
    pub direction: Direction,
    /// Sender address (E.164).
    pub from: String,
    /// Recipient address (E.164).
    pub to: String,
    /// Text.
    pub body: Option<String>,
    /// Media URLs.
    pub media_urls: Vec<String>,
    /// Template SID.
    pub content_sid: Option<String>,
    /// Template variables (JSON text).
    pub content_variables: Option<String>,
    /// Error code of the failure (Twilio's, or a local one).
    pub error_code: Option<i64>,
    /// Human-readable error.
    pub error_message: Option<String>,
    /// Queue priority.
    pub priority: i64,
    /// Send attempts made so far.
    pub attempts: i64,
    /// The application's reference.
    pub reference: Option<String>,
    /// The application's metadata (JSON text).
    pub metadata: Option<String>,
    /// When the next send attempt is due.
    pub next_attempt_at: Option<UnixMillis>,
    /// Bit set of the metric counters this message has already been counted in.
    pub counted: i64,
    /// When it was stored.
    pub created_at: UnixMillis,
    /// Status and its timestamps.
    pub lifecycle: Lifecycle,
}

impl MessageRecord {
    /// The current status.
    pub fn status(&self) -> MessageStatus {
        self.lifecycle.status
    }

    /// What the message carries, rebuilt from the stored columns.
    pub fn content(&self) -> Content {
        match &self.content_sid {
            Some(sid) => Content::Template { content_sid: sid.clone(), content_variables: self.content_variables.clone() },
            None => Content::FreeForm { body: self.body.clone(), media_urls: self.media_urls.clone() },
        }
    }
}

/// How long an idempotency key keeps pointing at its message (24 hours).
pub const IDEMPOTENCY_KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

pub(super) const MESSAGE_COLUMNS: &str = "id, message_sid, direction, from_addr, to_addr, body, media_urls, content_sid, \
     content_variables, status, error_code, error_message, priority, attempts, reference, metadata, next_attempt_at, \
     counted, created_at, queued_at, sent_at, delivered_at, read_at, failed_at, last_status_at";

pub(super) fn message_from_row(row: &AnyRow) -> Result<MessageRecord, StoreError> {
    let id = text(row, "id")?;
    let media: Option<String> = opt_text(row, "media_urls")?;
    Ok(MessageRecord {
        id: id.parse().map_err(|_| StoreError::Corrupt(format!("message id {id:?}")))?,
        message_sid: opt_text(row, "message_sid")?,
        direction: direction(row, "direction")?,
        from: text(row, "from_addr")?,
        to: text(row, "to_addr")?,
        body: opt_text(row, "body")?,
        media_urls: media.map(|m| serde_json::from_str(&m).unwrap_or_default()).unwrap_or_default(),
        content_sid: opt_text(row, "content_sid")?,
        content_variables: opt_text(row, "content_variables")?,
        error_code: opt_int(row, "error_code")?,
        error_message: opt_text(row, "error_message")?,
        priority: int(row, "priority")?,
        attempts: int(row, "attempts")?,
        reference: opt_text(row, "reference")?,
        metadata: opt_text(row, "metadata")?,
        next_attempt_at: opt_int(row, "next_attempt_at")?,
        counted: int(row, "counted")?,
        created_at: int(row, "created_at")?,
        lifecycle: Lifecycle {
            status: status(row, "status")?,
            queued_at: opt_int(row, "queued_at")?,
            sent_at: opt_int(row, "sent_at")?,
            delivered_at: opt_int(row, "delivered_at")?,
            read_at: opt_int(row, "read_at")?,
            failed_at: opt_int(row, "failed_at")?,
            error_code: opt_int(row, "error_code")?,
            last_status_at: int(row, "last_status_at")?,
        },
    })
}

/// One entry of a message's status history.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusLogEntry {
    /// Status before the report (`None` when the message was created).
    pub previous_status: Option<MessageStatus>,
    /// Status reported.
    pub new_status: MessageStatus,
    /// Whether the report changed the message's status (false for duplicates and stale reports).
    pub applied: bool,
    /// Error code carried by the report.
    pub error_code: Option<i64>,
    /// Who reported it: `api`, `worker`, `callback`, `reconcile`.
    pub source: String,
    /// Extra detail (an error message, a reason for ignoring).
    pub detail: Option<String>,
    /// When it was recorded.
    pub occurred_at: UnixMillis,
}

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
    /// Stores a new outbound message as `pending` and logs its creation. With an idempotency key
    /// already used in the last 24 hours, nothing is stored and the earlier message is returned
    /// with `false`; an older use of the key is released.
    pub async fn insert_outbound(
        &self,
        msg: &NewOutboundMessage,
        from: &PhoneNumber,
        now: UnixMillis,
    ) -> Result<(MessageRecord, bool), StoreError> {
        let (body, media, content_sid, content_variables) = match &msg.content {
            Content::FreeForm { body, media_urls } => {
                let media = (!media_urls.is_empty()).then(|| serde_json::to_string(media_urls).unwrap_or_default());
                (body.clone(), media, None, None)
            }
            Content::Template { content_sid, content_variables } => (None, None, Some(content_sid.clone()), content_variables.clone()),
        };
        let mut tx = self.begin().await?;
        if let Some(key) = &msg.idempotency_key {
            sqlx::query("UPDATE messages SET idempotency_key = NULL WHERE idempotency_key = $1 AND created_at < $2")
                .bind(key.clone())
                .bind(now - IDEMPOTENCY_KEY_LIFETIME_MS)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO messages (id, direction, from_addr, to_addr, body, media_urls, content_sid, content_variables, \
             status, priority, reference, metadata, next_attempt_at, created_at, last_status_at, idempotency_key) \
             VALUES ($1, 'outbound', $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11, $12, $12, $13) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(msg.id.to_string())
        .bind(from.as_e164().to_owned())
        .bind(msg.to.as_e164().to_owned())
        .bind(body)
        .bind(media)
        .bind(content_sid)
        .bind(content_variables)
        .bind(msg.priority.get())
        .bind(msg.reference.clone())
        .bind(msg.metadata.as_ref().map(|m| m.to_string()))
        .bind(msg.send_at.unwrap_or(now).max(now))
        .bind(now)
        .bind(msg.idempotency_key.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let existing = sqlx::query(AssertSqlSafe(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE idempotency_key = $1")))
                .bind(msg.idempotency_key.clone())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok((message_from_row(&existing)?, false));
        };
        log_status(&mut tx, msg.id, None, MessageStatus::Pending, true, None, "api", None, now).await?;
        tx.commit().await?;
        Ok((message_from_row(&row)?, true))
    }

    /// One message by id.
    pub async fn message(&self, id: MessageId) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// One message by Twilio SID.
    pub async fn message_by_sid(&self, sid: &str) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_sid = $1")))
            .bind(sid.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// Messages matching `filter`, newest first.
    pub async fn list_messages(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, StoreError> {
        // Each optional filter is written so that a NULL argument disables it, keeping one SQL text.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE \
             ($1 IS NULL OR status = $1) AND ($2 IS NULL OR direction = $2) \
             AND ($3 IS NULL OR to_addr = $3 OR from_addr = $3) \
             AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
             AND ($6 IS NULL OR reference = $6) \
             AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8)) \
             ORDER BY created_at DESC, id DESC LIMIT $9"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(filter.status.map(|s| s.as_str().to_owned()))
            .bind(filter.direction.map(|d| d.as_str().to_owned()))
            .bind(filter.phone.as_ref().map(|p| p.as_e164().to_owned()))
            .bind(filter.from)
            .bind(filter.to)
            .bind(filter.reference.clone())
            .bind(filter.after.map(|(at, _)| at))
            .bind(filter.after.map(|(_, id)| id.to_string()).unwrap_or_default())
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// A message's status history, oldest first.
    pub async fn status_history(&self, id: MessageId) -> Result<Vec<StatusLogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT previous_status, new_status, applied, error_code, source, detail, occurred_at \
             FROM message_status_log WHERE message_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StatusLogEntry {
                    previous_status: opt_status(row, "previous_status")?,
                    new_status: status(row, "new_status")?,
                    applied: int(row, "applied")? != 0,
                    error_code: opt_int(row, "error_code")?,
                    source: text(row, "source")?,
                    detail: opt_text(row, "detail")?,
                    occurred_at: int(row, "occurred_at")?,
                })
            })
            .collect()
    }
}

/// Appends one entry to a message's status history.
#[allow(clippy::too_many_arguments)]
pub(super) async fn log_status(
    tx: &mut sqlx::AnyConnection,
    id: MessageId,
    previous: Option<MessageStatus>,
    new: MessageStatus,
    applied: bool,
    error_code: Option<i64>,
    source: &str,
    detail: Option<String>,
    at: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO message_status_log (message_id, previous_status, new_status, applied, error_code, source, detail, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(previous.map(|s| s.as_str().to_owned()))
    .bind(new.as_str().to_owned())
    .bind(i64::from(applied))
    .bind(error_code)
    .bind(source.to_owned())
    .bind(detail)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
