//! What the store hands out: typed rows. Each struct decodes from its table's own columns by
//! name (`SELECT *`), on either backend.

use serde::Serialize;

use crate::domain::rollup::Counted;
use crate::domain::{
    AttemptOutcome, Content, Direction, Lifecycle, MessageId, MessageSid, MessageStatus, Origin, PhoneNumber, Priority, StatusSource,
    UnixMillis,
};

/// A stored message, inbound or outbound.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageRecord {
    /// Our id.
    pub id: MessageId,
    /// Twilio's SID, once known.
    pub message_sid: Option<MessageSid>,
    /// Outbound or inbound.
    pub direction: Direction,
    /// The sender: our number or Messaging Service (outbound), the contact (inbound).
    #[sqlx(rename = "from_addr")]
    pub from: Origin,
    /// The recipient.
    #[sqlx(rename = "to_addr")]
    pub to: PhoneNumber,
    /// Text.
    pub body: Option<String>,
    /// Media URLs.
    #[sqlx(try_from = "MediaColumn")]
    pub media_urls: Vec<String>,
    /// Template SID.
    pub content_sid: Option<String>,
    /// Template variables (JSON text).
    pub content_variables: Option<String>,
    /// The template to send instead of free-form content when the 24-hour window is closed.
    pub fallback_content_sid: Option<String>,
    /// Its variables (JSON text).
    pub fallback_content_variables: Option<String>,
    /// Human-readable error.
    pub error_message: Option<String>,
    /// Queue priority.
    pub priority: Priority,
    /// Send attempts made so far.
    pub attempts: i64,
    /// Attempts made before its last redrive (the allowance counts from there).
    pub attempt_base: i64,
    /// Seconds it may wait to be sent once due.
    pub validity_s: i64,
    /// When it expires unless sent (outbound messages).
    pub expires_at: Option<UnixMillis>,
    /// The application's reference.
    pub reference: Option<String>,
    /// The application's metadata (JSON text).
    pub metadata: Option<String>,
    /// When the next send attempt is due (while the message waits to be sent).
    pub next_attempt_at: Option<UnixMillis>,
    /// The worker holding the message, while one does.
    pub lease_owner: Option<String>,
    /// Until when that worker holds it (database clock).
    pub lease_until: Option<UnixMillis>,
    /// What the metrics have counted the message in.
    #[sqlx(try_from = "i64")]
    pub counted: Counted,
    /// The statuses Twilio has sent a callback for (one bit each, [`MessageStatus::bit`]).
    pub callbacks_seen: i64,
    /// How many events the message has had (the last one's sequence number).
    pub event_seq: i64,
    /// What an incoming message carried beyond text and media URLs (JSON text of
    /// [`crate::domain::InboundDetails`]).
    pub details: Option<String>,
    /// When it was stored.
    pub created_at: UnixMillis,
    /// Status and its timestamps.
    #[sqlx(flatten, try_from = "LifecycleRow")]
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

/// `media_urls` as stored: a JSON array, or NULL for none.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct MediaColumn(Option<String>);

impl From<MediaColumn> for Vec<String> {
    fn from(column: MediaColumn) -> Self {
        column.0.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
    }
}

/// The JSON text stored for a list of media URLs (NULL for none).
pub(crate) fn media_column(urls: &[String]) -> Option<String> {
    (!urls.is_empty()).then(|| serde_json::to_string(urls).unwrap_or_default())
}

/// What a message has added to the rollups: its `counted` flags and lifecycle (see
/// [`crate::domain::rollup::standing`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CountedMessage {
    pub created_at: UnixMillis,
    #[sqlx(try_from = "i64")]
    pub counted: Counted,
    #[sqlx(flatten, try_from = "LifecycleRow")]
    pub lifecycle: Lifecycle,
}

/// The lifecycle columns of `messages`.
#[derive(sqlx::FromRow)]
pub(crate) struct LifecycleRow {
    status: MessageStatus,
    queued_at: Option<UnixMillis>,
    sent_at: Option<UnixMillis>,
    delivered_at: Option<UnixMillis>,
    read_at: Option<UnixMillis>,
    failed_at: Option<UnixMillis>,
    error_code: Option<i64>,
    last_status_at: UnixMillis,
}

impl From<LifecycleRow> for Lifecycle {
    fn from(r: LifecycleRow) -> Self {
        Self {
            status: r.status,
            queued_at: r.queued_at,
            sent_at: r.sent_at,
            delivered_at: r.delivered_at,
            read_at: r.read_at,
            failed_at: r.failed_at,
            error_code: r.error_code,
            last_status_at: r.last_status_at,
        }
    }
}

/// One recorded send attempt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRecord {
    /// The message.
    pub message_id: MessageId,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// The worker that made it.
    pub worker: String,
    /// When the request was about to leave.
    pub started_at: UnixMillis,
    /// When its outcome was recorded.
    pub finished_at: Option<UnixMillis>,
    /// What it came to.
    pub outcome: AttemptOutcome,
    /// Twilio's HTTP status, when an answer came.
    pub http_status: Option<i64>,
    /// Twilio's error code.
    pub error_code: Option<i64>,
    /// Twilio's error message, or the network error.
    pub error_message: Option<String>,
    /// The SID Twilio gave.
    pub message_sid: Option<MessageSid>,
}

/// One entry of a message's status history.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusLogEntry {
    /// The message.
    pub message_id: MessageId,
    /// Status before the report (`None` when the message was created).
    pub previous_status: Option<MessageStatus>,
    /// Status reported.
    pub new_status: MessageStatus,
    /// Whether the report changed the message's status (false for stale reports).
    #[sqlx(try_from = "i64")]
    pub applied: Flag,
    /// Error code carried by the report.
    pub error_code: Option<i64>,
    /// Who reported it.
    pub source: StatusSource,
    /// Extra detail (an error message, a reason for ignoring).
    pub detail: Option<String>,
    /// When it was recorded.
    pub occurred_at: UnixMillis,
}

/// A boolean stored as 0 / 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Flag(pub bool);

impl From<i64> for Flag {
    fn from(value: i64) -> Self {
        Self(value != 0)
    }
}

/// Someone who wrote to us.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Contact {
    /// Their number.
    pub phone: PhoneNumber,
    /// WhatsApp profile name.
    pub profile_name: Option<String>,
    /// WhatsApp id.
    pub wa_id: Option<String>,
    /// When they last wrote (opens the 24-hour window).
    pub last_inbound_at: Option<UnixMillis>,
    /// Whether they asked us to stop.
    #[sqlx(try_from = "i64")]
    pub opted_out: Flag,
    /// The Twilio error that suppressed the number (63024, 21211, 21614), while it is.
    pub suppressed_code: Option<i64>,
    /// When it was suppressed.
    pub suppressed_at: Option<UnixMillis>,
}

impl Contact {
    /// A contact of whom nothing is known yet.
    pub fn blank(phone: &PhoneNumber) -> Self {
        Self {
            phone: phone.clone(),
            profile_name: None,
            wa_id: None,
            last_inbound_at: None,
            opted_out: Flag(false),
            suppressed_code: None,
            suppressed_at: None,
        }
    }
}

/// A status callback that arrived before its message's SID was recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UnmatchedCallback {
    /// The SID it names.
    pub message_sid: MessageSid,
    /// The status it reports.
    pub status: MessageStatus,
    /// Its error code.
    pub error_code: Option<i64>,
    /// When it arrived.
    pub received_at: UnixMillis,
}

/// One rollup bucket with its histogram and error breakdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsBucket {
    /// Bucket start (ms).
    pub bucket_start: UnixMillis,
    /// Messages that left `pending` (accepted by Twilio or failed).
    pub total: i64,
    /// Accepted by Twilio.
    pub sent: i64,
    /// Delivered (or read).
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Failed.
    pub failed: i64,
    /// Undelivered.
    pub undelivered: i64,
    /// Sum of delivery times (ms).
    pub delivery_time_sum_ms: i64,
    /// Number of delivery times summed.
    pub delivery_time_count: i64,
    /// Delivery-time histogram: (upper bound ms, count).
    pub histogram: Vec<(i64, i64)>,
    /// Error code → count.
    pub errors: Vec<(i64, i64)>,
}

/// The counters of one rollup bucket, as summed over its shards.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct BucketCounters {
    pub bucket_start: UnixMillis,
    pub total: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub undelivered: i64,
    pub delivery_time_sum_ms: i64,
    pub delivery_time_count: i64,
}

/// One keyed count of a bucket (a histogram bucket or an error code).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct BucketEntry {
    pub bucket_start: UnixMillis,
    pub k: i64,
    pub count: i64,
}

/// What one sender's outbound messages came to since a time (`GET /senders`).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SenderStats {
    /// Messages created from it.
    pub total: i64,
    /// Accepted by Twilio.
    pub sent: i64,
    /// Delivered (or read).
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Failed or undelivered.
    pub failed: i64,
    /// Send attempts Twilio throttled (429, 20429, 63018).
    #[sqlx(default)]
    pub throttled: i64,
    /// Incoming messages to it (a number; a Messaging Service's arrive at its numbers).
    #[sqlx(default)]
    pub received: i64,
    /// The latest 63051 (the WhatsApp Business Account is locked) on one of its messages.
    pub locked_at: Option<UnixMillis>,
    /// The latest delivery: a lock is over once a message is delivered after it.
    pub last_delivered_at: Option<UnixMillis>,
}

/// A recipient's performance row and its latest errors.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PhonePerformance {
    /// The recipient.
    pub phone: PhoneNumber,
    /// Messages that left `pending`.
    pub total_messages: i64,
    /// Delivered (or read).
    pub success_count: i64,
    /// Failed or undelivered.
    pub failure_count: i64,
    /// Read.
    pub read_count: i64,
    /// When the latest message was created.
    pub last_message_at: Option<UnixMillis>,
    /// The 5 latest errors, newest first.
    #[sqlx(skip)]
    pub recent_errors: Vec<PhoneErrorRecord>,
    /// The Twilio error that suppressed the number, and when, while it is suppressed.
    #[sqlx(skip)]
    pub suppressed: Option<(i64, UnixMillis)>,
}

/// One failed message in a phone's history.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PhoneErrorRecord {
    /// The message.
    pub message_id: MessageId,
    /// Error code.
    pub error_code: Option<i64>,
    /// Error text.
    pub error_message: Option<String>,
    /// When.
    pub occurred_at: UnixMillis,
}
