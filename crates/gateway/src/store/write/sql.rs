//! PostgreSQL's set-based statements: one per table, each taking one array per column (and the
//! list of unsettled statuses both backends poll).

pub(super) const PG_INSERT_MESSAGES: &str = "INSERT INTO messages (id, message_sid, direction, from_addr, to_addr, body, \
     media_urls, content_sid, content_variables, status, error_code, error_message, priority, attempts, reference, metadata, \
     next_attempt_at, counted, callbacks_seen, created_at, queued_at, sent_at, delivered_at, read_at, failed_at, last_status_at, \
     idempotency_key, validity_s, expires_at, fallback_content_sid, fallback_content_variables, event_seq, details) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::text[], $11::bigint[], $12::text[], $13::bigint[], $14::bigint[], $15::text[], $16::text[], $17::bigint[], \
     $18::bigint[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[], $23::bigint[], $24::bigint[], $25::bigint[], \
     $26::bigint[], $27::text[], $28::bigint[], $29::bigint[], $30::text[], $31::text[], $32::bigint[], $33::text[])";

pub(super) const PG_UPDATE_MESSAGES: &str = "UPDATE messages AS m SET message_sid = v.message_sid, status = v.status, \
     error_code = v.error_code, error_message = v.error_message, attempts = v.attempts, next_attempt_at = v.next_attempt_at, \
     lease_owner = v.lease_owner, lease_until = v.lease_until, counted = v.counted, callbacks_seen = v.callbacks_seen, \
     queued_at = v.queued_at, sent_at = v.sent_at, delivered_at = v.delivered_at, read_at = v.read_at, failed_at = v.failed_at, \
     last_status_at = v.last_status_at, attempt_base = v.attempt_base, expires_at = v.expires_at, \
     content_sid = v.content_sid, content_variables = v.content_variables, event_seq = v.event_seq \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], \
     $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], \
     $17::bigint[], $18::bigint[], $19::bigint[], $20::text[], $21::text[], $22::bigint[]) AS v(id, message_sid, status, error_code, \
     error_message, attempts, next_attempt_at, lease_owner, lease_until, counted, callbacks_seen, queued_at, sent_at, \
     delivered_at, read_at, failed_at, last_status_at, attempt_base, expires_at, content_sid, content_variables, event_seq) \
     WHERE m.id = v.id";

/// A batch's events and their deliveries, in one statement (one round trip inside the batch's
/// transaction, which holds its messages' locks).
pub(super) const PG_INSERT_EVENTS: &str = "WITH inserted AS (INSERT INTO events (id, event_type, message_id, seq, payload, \
     created_at) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])) \
     INSERT INTO event_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
     SELECT e, d, 'pending', 0, t, t FROM UNNEST($7::text[], $8::text[], $9::bigint[]) AS v(e, d, t)";

pub(super) const PG_INSERT_LOG: &str = "INSERT INTO message_status_log (message_id, previous_status, new_status, applied, \
     error_code, source, detail, occurred_at) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[])";

pub(super) const PG_INSERT_ATTEMPTS: &str = "INSERT INTO send_attempts (message_id, attempt, worker, started_at, outcome) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])";

pub(super) const PG_FINISH_ATTEMPTS: &str = "UPDATE send_attempts AS a SET outcome = v.outcome, finished_at = v.finished_at, \
     http_status = v.http_status, error_code = v.error_code, error_message = v.error_message, message_sid = v.message_sid \
     FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[]) \
     AS v(message_id, attempt, outcome, finished_at, http_status, error_code, error_message, message_sid) \
     WHERE a.message_id = v.message_id AND a.attempt = v.attempt";

pub(super) const PG_INSERT_UNMATCHED: &str = "INSERT INTO unmatched_callbacks (message_sid, status, error_code, received_at) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) ON CONFLICT (message_sid, status) DO NOTHING";

/// New contacts (existing ones are left to [`PG_MERGE_CONTACTS`]). `$5` is the consent keyword:
/// 0 none, 1 STOP, 2 START; `$6` the inbound message's time (NULL for an opt-out Twilio reported);
/// `$7` the Twilio error that suppresses the number (NULL: none).
pub(super) const PG_INSERT_CONTACTS: &str = "INSERT INTO contacts (phone, profile_name, wa_id, last_inbound_at, opted_out, \
     opted_out_at, created_at, updated_at, suppressed_code, suppressed_at) \
     SELECT phone, profile_name, wa_id, inbound_at, CASE WHEN opt = 1 THEN 1 ELSE 0 END, CASE WHEN opt = 1 THEN at END, at, at, \
     suppress, CASE WHEN suppress IS NOT NULL THEN at END \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[]) \
     AS v(phone, profile_name, wa_id, at, opt, inbound_at, suppress) \
     ON CONFLICT (phone) DO NOTHING";

/// Merges an inbound message into its contact: profile kept unless given, latest inbound time,
/// consent changed only by a keyword; a suppression set by its error, lifted by an inbound message.
pub(super) const PG_MERGE_CONTACTS: &str = "UPDATE contacts AS c SET profile_name = COALESCE(v.profile_name, c.profile_name), \
     wa_id = COALESCE(v.wa_id, c.wa_id), \
     last_inbound_at = GREATEST(c.last_inbound_at, v.inbound_at), \
     opted_out = CASE WHEN v.opt = 1 THEN 1 WHEN v.opt = 2 THEN 0 ELSE c.opted_out END, \
     opted_out_at = CASE WHEN v.opt = 1 THEN v.at WHEN v.opt = 2 THEN NULL ELSE c.opted_out_at END, \
     updated_at = GREATEST(c.updated_at, v.at), \
     suppressed_code = CASE WHEN v.suppress IS NOT NULL THEN v.suppress WHEN v.inbound_at IS NOT NULL THEN NULL \
     ELSE c.suppressed_code END, \
     suppressed_at = CASE WHEN v.suppress IS NOT NULL THEN v.at WHEN v.inbound_at IS NOT NULL THEN NULL ELSE c.suppressed_at END \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[]) \
     AS v(phone, profile_name, wa_id, at, opt, inbound_at, suppress) \
     WHERE c.phone = v.phone";

pub(super) const PG_UPSERT_METRICS: &str = "INSERT INTO delivery_metrics (granularity, bucket_start, phone, total, sent, \
     delivered, read, failed, undelivered, delivery_time_sum_ms, delivery_time_count) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], \
     $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[]) \
     ON CONFLICT (granularity, phone, bucket_start) DO UPDATE SET total = delivery_metrics.total + excluded.total, \
     sent = delivery_metrics.sent + excluded.sent, delivered = delivery_metrics.delivered + excluded.delivered, \
     read = delivery_metrics.read + excluded.read, failed = delivery_metrics.failed + excluded.failed, \
     undelivered = delivery_metrics.undelivered + excluded.undelivered, \
     delivery_time_sum_ms = delivery_metrics.delivery_time_sum_ms + excluded.delivery_time_sum_ms, \
     delivery_time_count = delivery_metrics.delivery_time_count + excluded.delivery_time_count";

pub(super) const PG_UPSERT_HISTOGRAM: &str = "INSERT INTO delivery_time_histogram (granularity, bucket_start, phone, le_ms, count) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) \
     ON CONFLICT (granularity, phone, bucket_start, le_ms) DO UPDATE SET count = delivery_time_histogram.count + excluded.count";

pub(super) const PG_UPSERT_ERRORS: &str = "INSERT INTO delivery_errors (granularity, bucket_start, phone, error_code, count) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) \
     ON CONFLICT (granularity, phone, bucket_start, error_code) DO UPDATE SET count = delivery_errors.count + excluded.count";

pub(super) const PG_UPSERT_PHONES: &str = "INSERT INTO phone_performance (phone, total_messages, success_count, failure_count, \
     read_count, last_message_at) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) \
     ON CONFLICT (phone) DO UPDATE SET total_messages = phone_performance.total_messages + excluded.total_messages, \
     success_count = phone_performance.success_count + excluded.success_count, \
     failure_count = phone_performance.failure_count + excluded.failure_count, \
     read_count = phone_performance.read_count + excluded.read_count, \
     last_message_at = GREATEST(phone_performance.last_message_at, excluded.last_message_at)";

pub(super) const PG_INSERT_PHONE_ERRORS: &str = "INSERT INTO phone_errors (phone, message_id, error_code, error_message, occurred_at) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])";

// Loading a batch's rows (locked for the transaction).

pub(super) const PG_NOW: &str = "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
pub(super) const PG_FREE_KEYS: &str = "UPDATE messages SET idempotency_key = NULL WHERE idempotency_key = ANY($1) AND created_at < $2";
pub(super) const PG_LOAD_BY_KEY: &str =
    "SELECT idempotency_key AS key, messages.* FROM messages WHERE idempotency_key = ANY($1) FOR UPDATE";
pub(super) const PG_PICK: &str = "SELECT * FROM messages WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1 \
     AND (lease_until IS NULL OR lease_until < $1) ORDER BY priority, next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED";
/// The statuses of `MessageStatus::UNSETTLED`, as the poll statements (and the partial indexes of
/// migration 0009) list them.
macro_rules! unsettled {
    () => {
        "('scheduled', 'accepted', 'queued', 'sending', 'sent', 'partially_delivered', 'delivered')"
    };
}
pub(super) use unsettled;

/// Messages never polled, silent since before `$1` but not before `$2`, longest silent first.
pub(super) const PG_PICK_UNPOLLED: &str = concat!(
    "SELECT * FROM messages WHERE poll_at IS NULL AND message_sid IS NOT NULL AND status IN ",
    unsettled!(),
    " AND last_status_at <= $1 AND last_status_at >= $2 ORDER BY last_status_at LIMIT $3 FOR UPDATE SKIP LOCKED"
);
/// Messages polled before and due again at `$1`, silent since before `$2`, most overdue first.
pub(super) const PG_PICK_POLL_DUE: &str = concat!(
    "SELECT * FROM messages WHERE poll_at > 0 AND poll_at <= $1 AND status IN ",
    unsettled!(),
    " AND last_status_at <= $2 ORDER BY poll_at LIMIT $3 FOR UPDATE SKIP LOCKED"
);
pub(super) const PG_SET_POLL_AT: &str = "UPDATE messages AS m SET poll_at = v.poll_at \
     FROM UNNEST($1::text[], $2::bigint[]) AS v(id, poll_at) WHERE m.id = v.id";
pub(super) const PG_LOAD_SENDABLE_TO: &str = "SELECT * FROM messages WHERE to_addr = ANY($1) AND direction = 'outbound' \
     AND status IN ('pending', 'retrying') ORDER BY id FOR UPDATE";
pub(super) const PG_LOAD_MESSAGES: &str = "SELECT * FROM messages WHERE id = ANY($1) OR message_sid = ANY($2) ORDER BY id FOR UPDATE";
pub(super) const PG_LOAD_UNMATCHED: &str = "SELECT * FROM unmatched_callbacks WHERE message_sid = ANY($1) ORDER BY id";
/// Our number each phone last dealt with: the sender of its latest outbound message or the
/// recipient of its latest inbound one, whichever is newer (each found by one index probe).
pub(super) const PG_LOAD_LAST_SENDERS: &str = "SELECT p.phone, CASE WHEN i.created_at > o.created_at OR o.created_at IS NULL \
     THEN i.to_addr ELSE o.from_addr END AS ours FROM unnest($1::text[]) AS p(phone) \
     LEFT JOIN LATERAL (SELECT from_addr, created_at FROM messages WHERE to_addr = p.phone AND direction = 'outbound' \
     ORDER BY created_at DESC LIMIT 1) o ON true \
     LEFT JOIN LATERAL (SELECT to_addr, created_at FROM messages WHERE from_addr = p.phone AND direction = 'inbound' \
     ORDER BY created_at DESC LIMIT 1) i ON true \
     WHERE o.created_at IS NOT NULL OR i.created_at IS NOT NULL";
pub(super) const PG_LOAD_CONTACTS: &str = "SELECT * FROM contacts WHERE phone = ANY($1)";
pub(super) const PG_LOAD_UNRESOLVED: &str =
    "SELECT * FROM send_attempts WHERE message_id = ANY($1) AND outcome IN ('in_flight', 'unknown') ORDER BY attempt";

/// Every statement a writer runs, prepared when its connection opens: the first batches after a
/// start then pay no parsing, catalog loading or planning.
pub(super) const PG_STATEMENTS: &[&str] = &[
    PG_NOW,
    PG_FREE_KEYS,
    PG_LOAD_BY_KEY,
    PG_PICK,
    PG_PICK_UNPOLLED,
    PG_PICK_POLL_DUE,
    PG_SET_POLL_AT,
    PG_LOAD_SENDABLE_TO,
    PG_LOAD_MESSAGES,
    PG_LOAD_UNMATCHED,
    PG_LOAD_CONTACTS,
    PG_LOAD_LAST_SENDERS,
    PG_LOAD_UNRESOLVED,
    PG_INSERT_MESSAGES,
    PG_UPDATE_MESSAGES,
    PG_INSERT_LOG,
    PG_INSERT_EVENTS,
    PG_INSERT_ATTEMPTS,
    PG_FINISH_ATTEMPTS,
    PG_INSERT_UNMATCHED,
    PG_INSERT_CONTACTS,
    PG_MERGE_CONTACTS,
    PG_UPSERT_METRICS,
    PG_UPSERT_HISTOGRAM,
    PG_UPSERT_ERRORS,
    PG_UPSERT_PHONES,
    PG_INSERT_PHONE_ERRORS,
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_poll_statements_and_indexes_list_the_unsettled_statuses() {
        let listed = format!(
            "({})",
            crate::domain::MessageStatus::UNSETTLED.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
        );
        assert_eq!(unsettled!(), listed);
        for migration in
            [include_str!("../../../migrations/postgres/0009_poll.sql"), include_str!("../../../migrations/sqlite/0009_poll.sql")]
        {
            assert_eq!(migration.matches(&listed).count(), 2, "both partial indexes");
        }
    }

    #[test]
    fn every_statement_is_prepared_when_a_writer_connects() {
        let declared: Vec<&str> = include_str!("sql.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub(super) const ")?.split(':').next())
            .filter(|name| *name != "PG_STATEMENTS")
            .collect();
        assert_eq!(declared.len(), super::PG_STATEMENTS.len(), "{declared:?}");
        let distinct: std::collections::BTreeSet<&str> = super::PG_STATEMENTS.iter().copied().collect();
        assert_eq!(distinct.len(), super::PG_STATEMENTS.len(), "a statement is listed twice");
    }
}
