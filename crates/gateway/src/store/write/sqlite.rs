//! The batch on SQLite: one connection, owned by the writer on its own thread, runs each batch in
//! one `BEGIN IMMEDIATE` transaction, so a batch costs no hand-off between threads however many
//! statements it runs. Statements are prepared once and cached; rows are loaded and written one
//! by one, which costs microseconds in process.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::batch::IDEMPOTENCY_KEY_LIFETIME_MS;
use super::batch::{Keys, Loaded, merged_contact_changes, opt_code};
use super::command::{Command, Reply};
use super::plan::{Plan, millis};
use super::routes::Outbox;
use super::sql;
use super::writer::Executor;
use crate::domain::rollup::Counted;
use crate::domain::{Lifecycle, MessageId, Origin, PhoneNumber, now_ms};
use crate::store::error::StoreError;
use crate::store::records::{AttemptRecord, Contact, Flag, MessageRecord, UnmatchedCallback};

/// Runs batches on the SQLite file at `path`.
pub(crate) struct SqliteExecutor {
    path: PathBuf,
    conn: Option<Connection>,
    shard: String,
    outbox: Outbox,
}

impl SqliteExecutor {
    pub fn new(path: PathBuf, shard: String, outbox: Outbox) -> Self {
        Self { path, conn: None, shard, outbox }
    }
}

/// Opens the writer's connection: WAL, normal sync, foreign keys, a busy timeout, a statement
/// cache large enough for every statement below.
fn open(path: &PathBuf) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Executor for SqliteExecutor {
    async fn warm(&mut self) -> Result<(), StoreError> {
        if self.conn.is_none() {
            self.conn = Some(open(&self.path)?);
        }
        Ok(())
    }

    async fn run(&mut self, commands: Arc<Vec<Command>>) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => open(&self.path)?,
        };
        // The writer's own thread: blocking here blocks nothing else.
        let mut conn = conn;
        let result = run_batch(&mut conn, &commands, &self.shard, &self.outbox);
        self.conn = Some(conn);
        result
    }
}

fn run_batch(
    conn: &mut Connection,
    commands: &[Command],
    shard: &str,
    outbox: &Outbox,
) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let loaded = load(&tx, Keys::of(commands))?;
    let (plan, replies) = Plan::run(loaded, commands, shard, outbox.routes());
    write(&tx, &plan)?;
    tx.commit()?;
    outbox.committed(!plan.changes.events.is_empty());
    Ok(replies)
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    let media: Option<String> = row.get("media_urls")?;
    Ok(MessageRecord {
        id: row.get("id")?,
        message_sid: row.get("message_sid")?,
        direction: row.get("direction")?,
        from: row.get("from_addr")?,
        to: row.get("to_addr")?,
        body: row.get("body")?,
        media_urls: media.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default(),
        content_sid: row.get("content_sid")?,
        content_variables: row.get("content_variables")?,
        fallback_content_sid: row.get("fallback_content_sid")?,
        fallback_content_variables: row.get("fallback_content_variables")?,
        error_message: row.get("error_message")?,
        priority: row.get("priority")?,
        attempts: row.get("attempts")?,
        attempt_base: row.get("attempt_base")?,
        validity_s: row.get("validity_s")?,
        expires_at: row.get("expires_at")?,
        reference: row.get("reference")?,
        metadata: row.get("metadata")?,
        next_attempt_at: row.get("next_attempt_at")?,
        lease_owner: row.get("lease_owner")?,
        lease_until: row.get("lease_until")?,
        counted: Counted(row.get("counted")?),
        callbacks_seen: row.get("callbacks_seen")?,
        event_seq: row.get("event_seq")?,
        details: row.get("details")?,
        created_at: row.get("created_at")?,
        lifecycle: Lifecycle {
            status: row.get("status")?,
            queued_at: row.get("queued_at")?,
            sent_at: row.get("sent_at")?,
            delivered_at: row.get("delivered_at")?,
            read_at: row.get("read_at")?,
            failed_at: row.get("failed_at")?,
            error_code: row.get("error_code")?,
            last_status_at: row.get("last_status_at")?,
        },
    })
}

fn messages(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> Result<Vec<MessageRecord>, StoreError> {
    let mut statement = tx.prepare_cached(sql)?;
    let rows = statement.query_map(params, message_from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// `sql::PG_LOAD_LAST_SENDERS` for one phone, on SQLite.
const SQLITE_LOAD_LAST_SENDER: &str = "SELECT ours FROM ( \
     SELECT * FROM (SELECT from_addr AS ours, created_at FROM messages WHERE to_addr = ?1 AND direction = 'outbound' \
     ORDER BY created_at DESC LIMIT 1) \
     UNION ALL SELECT * FROM (SELECT to_addr AS ours, created_at FROM messages WHERE from_addr = ?1 AND direction = 'inbound' \
     ORDER BY created_at DESC LIMIT 1)) ORDER BY created_at DESC LIMIT 1";

fn load(tx: &Transaction<'_>, keys: Keys) -> Result<Loaded, StoreError> {
    let now = now_ms();
    let mut loaded = Loaded { now, ..Loaded::default() };
    for key in &keys.idempotency {
        tx.prepare_cached("UPDATE messages SET idempotency_key = NULL WHERE idempotency_key = ?1 AND created_at < ?2")?
            .execute(params![key, now - IDEMPOTENCY_KEY_LIFETIME_MS])?;
        for message in messages(tx, "SELECT * FROM messages WHERE idempotency_key = ?1", [key])? {
            loaded.by_key.insert(key.clone(), message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    if keys.pick > 0 {
        let picked = messages(
            tx,
            "SELECT * FROM messages WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?1 \
             AND (lease_until IS NULL OR lease_until < ?1) ORDER BY priority, next_attempt_at LIMIT ?2",
            params![now, i64::try_from(keys.pick).unwrap_or(i64::MAX)],
        )?;
        for message in picked {
            loaded.picked.push(message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    if let Some(pick) = keys.polls {
        let limit = i64::try_from(pick.limit).unwrap_or(i64::MAX);
        let silent_since = now - millis(pick.after);
        let due = messages(
            tx,
            concat!(
                "SELECT * FROM messages WHERE poll_at > 0 AND poll_at <= ?1 AND status IN ",
                sql::unsettled!(),
                " AND last_status_at <= ?2 ORDER BY poll_at LIMIT ?3"
            ),
            params![now, silent_since, limit],
        )?;
        let room = limit - i64::try_from(due.len()).unwrap_or(limit);
        let fresh = if room > 0 {
            messages(
                tx,
                concat!(
                    "SELECT * FROM messages WHERE poll_at IS NULL AND message_sid IS NOT NULL AND status IN ",
                    sql::unsettled!(),
                    " AND last_status_at <= ?1 AND last_status_at >= ?2 ORDER BY last_status_at LIMIT ?3"
                ),
                params![silent_since, now - millis(pick.max_age), room],
            )?
        } else {
            Vec::new()
        };
        for message in due.into_iter().chain(fresh) {
            loaded.polled.push(message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    for id in &keys.ids {
        loaded.messages.extend(messages(tx, "SELECT * FROM messages WHERE id = ?1", [id])?.into_iter().map(|m| (m.id, m)));
    }
    for sid in &keys.sids {
        loaded.messages.extend(messages(tx, "SELECT * FROM messages WHERE message_sid = ?1", [sid])?.into_iter().map(|m| (m.id, m)));
    }
    for phone in &keys.stopping {
        let rows = messages(
            tx,
            "SELECT * FROM messages WHERE to_addr = ?1 AND direction = 'outbound' AND status IN ('pending', 'retrying') ORDER BY id",
            [phone],
        )?;
        for message in rows {
            loaded.sendable_to.entry(message.to.clone()).or_default().push(message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    for sid in &keys.unmatched {
        let mut statement = tx.prepare_cached("SELECT * FROM unmatched_callbacks WHERE message_sid = ?1 ORDER BY id")?;
        let rows = statement
            .query_map([sid], |row| {
                Ok(UnmatchedCallback {
                    message_sid: row.get("message_sid")?,
                    status: row.get("status")?,
                    error_code: row.get("error_code")?,
                    received_at: row.get("received_at")?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        if !rows.is_empty() {
            loaded.unmatched.insert(sid.clone(), rows);
        }
    }
    for phone in &keys.last_senders {
        let ours: Option<Origin> = tx.prepare_cached(SQLITE_LOAD_LAST_SENDER)?.query_row([phone], |row| row.get(0)).optional()?;
        loaded.last_senders.extend(ours.map(|o| (phone.clone(), o)));
    }
    let stopped = loaded.sendable_to.values().flatten().copied();
    let claimable: BTreeSet<MessageId> = loaded.picked.iter().copied().chain(keys.claim_ids.iter().copied()).chain(stopped).collect();
    let mut phones: BTreeSet<PhoneNumber> = keys.phones;
    phones.extend(claimable.iter().filter_map(|id| loaded.messages.get(id)).map(|m| m.to.clone()));
    for phone in phones {
        let contact = tx
            .prepare_cached("SELECT * FROM contacts WHERE phone = ?1")?
            .query_row([&phone], |row| {
                Ok(Contact {
                    phone: row.get("phone")?,
                    profile_name: row.get("profile_name")?,
                    wa_id: row.get("wa_id")?,
                    last_inbound_at: row.get("last_inbound_at")?,
                    opted_out: Flag(row.get::<_, i64>("opted_out")? != 0),
                    suppressed_code: row.get("suppressed_code")?,
                    suppressed_at: row.get("suppressed_at")?,
                })
            })
            .optional()?;
        loaded.contacts.extend(contact.map(|c| (phone, c)));
    }
    for id in claimable {
        let attempt = tx
            .prepare_cached(
                "SELECT * FROM send_attempts WHERE message_id = ?1 AND outcome IN ('in_flight', 'unknown') ORDER BY attempt DESC LIMIT 1",
            )?
            .query_row([id], |row| {
                Ok(AttemptRecord {
                    message_id: row.get("message_id")?,
                    attempt: row.get("attempt")?,
                    worker: row.get("worker")?,
                    started_at: row.get("started_at")?,
                    finished_at: row.get("finished_at")?,
                    outcome: row.get("outcome")?,
                    http_status: row.get("http_status")?,
                    error_code: row.get("error_code")?,
                    error_message: row.get("error_message")?,
                    message_sid: row.get("message_sid")?,
                })
            })
            .optional()?;
        loaded.unresolved.extend(attempt.map(|a| (id, a)));
    }
    Ok(loaded)
}

fn write(tx: &Transaction<'_>, plan: &Plan) -> Result<(), StoreError> {
    let changes = &plan.changes;
    for (m, key, media) in plan.inserted_rows() {
        let l = &m.lifecycle;
        tx.prepare_cached(
            "INSERT INTO messages (id, message_sid, direction, from_addr, to_addr, body, media_urls, content_sid, \
             content_variables, status, error_code, error_message, priority, attempts, reference, metadata, next_attempt_at, \
             counted, callbacks_seen, created_at, queued_at, sent_at, delivered_at, read_at, failed_at, last_status_at, \
             idempotency_key, validity_s, expires_at, fallback_content_sid, fallback_content_variables, event_seq, details) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, \
             ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)",
        )?
        .execute(params![
            m.id,
            m.message_sid,
            m.direction,
            m.from,
            m.to,
            m.body,
            media,
            m.content_sid,
            m.content_variables,
            l.status,
            l.error_code,
            m.error_message,
            m.priority,
            m.attempts,
            m.reference,
            m.metadata,
            m.next_attempt_at,
            m.counted.0,
            m.callbacks_seen,
            m.created_at,
            l.queued_at,
            l.sent_at,
            l.delivered_at,
            l.read_at,
            l.failed_at,
            l.last_status_at,
            key,
            m.validity_s,
            m.expires_at,
            m.fallback_content_sid,
            m.fallback_content_variables,
            m.event_seq,
            m.details,
        ])?;
    }
    for m in plan.updated_rows() {
        let l = &m.lifecycle;
        tx.prepare_cached(
            "UPDATE messages SET message_sid = ?2, status = ?3, error_code = ?4, error_message = ?5, attempts = ?6, \
             next_attempt_at = ?7, lease_owner = ?8, lease_until = ?9, counted = ?10, callbacks_seen = ?11, queued_at = ?12, \
             sent_at = ?13, delivered_at = ?14, read_at = ?15, failed_at = ?16, last_status_at = ?17, attempt_base = ?18, \
             expires_at = ?19, content_sid = ?20, content_variables = ?21, event_seq = ?22 WHERE id = ?1",
        )?
        .execute(params![
            m.id,
            m.message_sid,
            l.status,
            l.error_code,
            m.error_message,
            m.attempts,
            m.next_attempt_at,
            m.lease_owner,
            m.lease_until,
            m.counted.0,
            m.callbacks_seen,
            l.queued_at,
            l.sent_at,
            l.delivered_at,
            l.read_at,
            l.failed_at,
            l.last_status_at,
            m.attempt_base,
            m.expires_at,
            m.content_sid,
            m.content_variables,
            m.event_seq,
        ])?;
    }
    for e in &changes.events {
        tx.prepare_cached("INSERT INTO events (id, event_type, message_id, seq, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
            .execute(params![e.id, e.event_type.as_str(), e.message_id, e.seq, e.payload, e.created_at])?;
        for endpoint in &e.endpoints {
            tx.prepare_cached(
                "INSERT INTO event_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
                 VALUES (?1, ?2, 'pending', 0, ?3, ?3)",
            )?
            .execute(params![e.id, endpoint, e.created_at])?;
        }
    }
    for e in &changes.log {
        tx.prepare_cached(
            "INSERT INTO message_status_log (message_id, previous_status, new_status, applied, error_code, source, detail, \
             occurred_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            e.message_id,
            e.previous_status,
            e.new_status,
            i64::from(e.applied),
            e.error_code,
            e.source,
            e.detail,
            e.occurred_at
        ])?;
    }
    for a in &changes.attempts_started {
        tx.prepare_cached("INSERT INTO send_attempts (message_id, attempt, worker, started_at, outcome) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![a.message_id, a.attempt, a.worker, a.started_at, a.outcome])?;
    }
    for a in &changes.attempts_finished {
        tx.prepare_cached(
            "UPDATE send_attempts SET outcome = ?3, finished_at = ?4, http_status = ?5, error_code = ?6, error_message = ?7, \
             message_sid = ?8 WHERE message_id = ?1 AND attempt = ?2",
        )?
        .execute(params![
            a.message_id,
            a.attempt,
            a.outcome,
            a.finished_at,
            a.http_status,
            a.error_code,
            a.error_message,
            a.message_sid
        ])?;
    }
    for sid in &changes.unmatched_consumed {
        tx.prepare_cached("DELETE FROM unmatched_callbacks WHERE message_sid = ?1")?.execute([sid])?;
    }
    for c in changes.unmatched_new.iter().filter(|c| !changes.unmatched_consumed.contains(&c.message_sid)) {
        tx.prepare_cached(
            "INSERT INTO unmatched_callbacks (message_sid, status, error_code, received_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (message_sid, status) DO NOTHING",
        )?
        .execute(params![c.message_sid, c.status, c.error_code, c.received_at])?;
    }
    for c in merged_contact_changes(&changes.contacts) {
        tx.prepare_cached(
            "INSERT INTO contacts (phone, profile_name, wa_id, last_inbound_at, opted_out, opted_out_at, created_at, updated_at, \
             suppressed_code, suppressed_at) \
             VALUES (?1, ?2, ?3, ?6, CASE WHEN ?5 = 1 THEN 1 ELSE 0 END, CASE WHEN ?5 = 1 THEN ?4 END, ?4, ?4, ?7, \
             CASE WHEN ?7 IS NOT NULL THEN ?4 END) \
             ON CONFLICT (phone) DO UPDATE SET profile_name = COALESCE(excluded.profile_name, contacts.profile_name), \
             wa_id = COALESCE(excluded.wa_id, contacts.wa_id), \
             last_inbound_at = COALESCE(MAX(COALESCE(contacts.last_inbound_at, ?6), ?6), contacts.last_inbound_at), \
             opted_out = CASE WHEN ?5 = 1 THEN 1 WHEN ?5 = 2 THEN 0 ELSE contacts.opted_out END, \
             opted_out_at = CASE WHEN ?5 = 1 THEN ?4 WHEN ?5 = 2 THEN NULL ELSE contacts.opted_out_at END, \
             updated_at = MAX(contacts.updated_at, ?4), \
             suppressed_code = CASE WHEN ?7 IS NOT NULL THEN ?7 WHEN ?6 IS NOT NULL THEN NULL ELSE contacts.suppressed_code END, \
             suppressed_at = CASE WHEN ?7 IS NOT NULL THEN ?4 WHEN ?6 IS NOT NULL THEN NULL ELSE contacts.suppressed_at END",
        )?
        .execute(params![c.phone, c.profile_name, c.wa_id, c.at, opt_code(c.opt), c.inbound_at, c.suppress])?;
    }
    for (id, at) in &changes.polls {
        tx.prepare_cached("UPDATE messages SET poll_at = ?2 WHERE id = ?1")?.execute(params![id, at])?;
    }
    write_rollups(tx, plan)
}

fn write_rollups(tx: &Transaction<'_>, plan: &Plan) -> Result<(), StoreError> {
    let book = &plan.changes.rollups;
    for (k, c) in &book.counters {
        tx.prepare_cached(
            "INSERT INTO delivery_metrics (granularity, bucket_start, phone, total, sent, delivered, read, failed, undelivered, \
             delivery_time_sum_ms, delivery_time_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (granularity, phone, bucket_start) DO UPDATE SET total = total + excluded.total, \
             sent = sent + excluded.sent, delivered = delivered + excluded.delivered, read = read + excluded.read, \
             failed = failed + excluded.failed, undelivered = undelivered + excluded.undelivered, \
             delivery_time_sum_ms = delivery_time_sum_ms + excluded.delivery_time_sum_ms, \
             delivery_time_count = delivery_time_count + excluded.delivery_time_count",
        )?
        .execute(params![
            k.granularity.as_str(),
            k.bucket_start,
            k.phone,
            c.total,
            c.sent,
            c.delivered,
            c.read,
            c.failed,
            c.undelivered,
            c.time_sum_ms,
            c.time_count
        ])?;
    }
    for ((k, le), count) in &book.histogram {
        tx.prepare_cached(
            "INSERT INTO delivery_time_histogram (granularity, bucket_start, phone, le_ms, count) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (granularity, phone, bucket_start, le_ms) DO UPDATE SET count = count + excluded.count",
        )?
        .execute(params![k.granularity.as_str(), k.bucket_start, k.phone, le, count])?;
    }
    for ((k, code), count) in &book.errors {
        tx.prepare_cached(
            "INSERT INTO delivery_errors (granularity, bucket_start, phone, error_code, count) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (granularity, phone, bucket_start, error_code) DO UPDATE SET count = count + excluded.count",
        )?
        .execute(params![k.granularity.as_str(), k.bucket_start, k.phone, code, count])?;
    }
    for (phone, p) in &book.phones {
        tx.prepare_cached(
            "INSERT INTO phone_performance (phone, total_messages, success_count, failure_count, read_count, last_message_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (phone) DO UPDATE SET \
             total_messages = total_messages + excluded.total_messages, success_count = success_count + excluded.success_count, \
             failure_count = failure_count + excluded.failure_count, read_count = read_count + excluded.read_count, \
             last_message_at = MAX(COALESCE(last_message_at, excluded.last_message_at), COALESCE(excluded.last_message_at, last_message_at))",
        )?
        .execute(params![phone, p.total, p.success, p.failure, p.read, p.last_message_at])?;
    }
    for e in &book.phone_errors {
        tx.prepare_cached(
            "INSERT INTO phone_errors (phone, message_id, error_code, error_message, occurred_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![e.phone, e.message_id, e.error_code, e.error_message, e.occurred_at])?;
    }
    Ok(())
}
