//! The batch on PostgreSQL: a handful of set-based statements per batch, whatever its size —
//! rows are loaded with `= ANY($1)` and locked (`FOR UPDATE`, in id order, so that two writers
//! never deadlock on messages; `SKIP LOCKED` for the queue's picks), and written with `UNNEST`
//! arrays, one statement per table.

use std::collections::BTreeSet;
use std::sync::Arc;

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, Executor as _, PgConnection};

use super::batch::IDEMPOTENCY_KEY_LIFETIME_MS;
use super::batch::{Keys, Loaded};
use super::command::{Command, Reply};
use super::plan::{Plan, millis};
use super::rollups::{Counters, RollupKey};
use super::routes::Outbox;
use super::sql;
use super::writer::Executor;
use crate::domain::{MessageId, Origin, PhoneNumber};
use crate::store::error::StoreError;
use crate::store::records::{AttemptRecord, Contact, MessageRecord, UnmatchedCallback};

/// Runs batches on a PostgreSQL connection of its own (opened again after a failure).
pub(crate) struct PgExecutor {
    options: PgConnectOptions,
    connect_timeout: Duration,
    conn: Option<PgConnection>,
    shard: String,
    outbox: Outbox,
}

impl PgExecutor {
    pub fn new(options: PgConnectOptions, connect_timeout: Duration, shard: String, outbox: Outbox) -> Self {
        Self { options, connect_timeout, conn: None, shard, outbox }
    }

    async fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        if self.conn.is_none() {
            let connect = PgConnection::connect_with(&self.options);
            let mut conn = tokio::time::timeout(self.connect_timeout, connect)
                .await
                .map_err(|_| StoreError::Unavailable("no connection to the database in time".into()))??;
            sqlx::raw_sql(sqlx::AssertSqlSafe(session_settings(self.connect_timeout))).execute(&mut conn).await?;
            for statement in sql::PG_STATEMENTS {
                conn.prepare(sqlx::SqlSafeStr::into_sql_str(*statement)).await?;
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    async fn batch(&mut self, commands: &[Command]) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
        let shard = self.shard.clone();
        let routes = self.outbox.routes();
        let conn = self.connection().await?;
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
        let loaded = load(conn, Keys::of(commands)).await?;
        let (plan, replies) = Plan::run(loaded, commands, &shard, routes);
        write(conn, &plan).await?;
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        self.outbox.committed(!plan.changes.events.is_empty());
        Ok(replies)
    }
}

/// The writer's session. Every statement it runs finds its rows by key (`= ANY` of an array, an
/// `UNNEST` joined on a key, the sendable partial index), so it is planned once per connection
/// (a generic plan: planning each batch anew cost a fifth of the database's CPU) with only index
/// paths allowed: a plan made while a table was still small never turns into a scan of it as
/// the table grows. A batch waits for a row lock no longer than a caller waits for the writer, so
/// a table held by someone else is answered 503, not left hanging.
fn session_settings(lock_timeout: Duration) -> String {
    format!(
        "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; SET enable_hashjoin = off; \
         SET enable_mergejoin = off; SET lock_timeout = {}",
        lock_timeout.as_millis().max(1)
    )
}

impl Executor for PgExecutor {
    async fn warm(&mut self) -> Result<(), StoreError> {
        self.connection().await.map(drop)
    }

    async fn run(&mut self, commands: Arc<Vec<Command>>) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
        let result = self.batch(&commands).await;
        if result.is_err()
            && let Some(conn) = self.conn.as_mut()
            && sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err()
        {
            // The connection itself is gone: open a new one for the next batch.
            self.conn = None;
        }
        result
    }
}

fn texts<T: ToString>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|v| v.to_string()).collect()
}

async fn load(conn: &mut PgConnection, keys: Keys) -> Result<Loaded, StoreError> {
    let now: i64 = sqlx::query_scalar(sql::PG_NOW).fetch_one(&mut *conn).await?;
    let mut loaded = Loaded { now, ..Loaded::default() };
    if !keys.idempotency.is_empty() {
        let keys_in_use: Vec<String> = keys.idempotency.iter().cloned().collect();
        sqlx::query(sql::PG_FREE_KEYS).bind(&keys_in_use).bind(now - IDEMPOTENCY_KEY_LIFETIME_MS).execute(&mut *conn).await?;
        let rows: Vec<(String, MessageRecord)> = sqlx::query_as::<_, KeyedMessage>(sql::PG_LOAD_BY_KEY)
            .bind(&keys_in_use)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|k| (k.key, k.message))
            .collect();
        for (key, message) in rows {
            loaded.by_key.insert(key, message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    if keys.pick > 0 {
        let picked: Vec<MessageRecord> =
            sqlx::query_as(sql::PG_PICK).bind(now).bind(i64::try_from(keys.pick).unwrap_or(i64::MAX)).fetch_all(&mut *conn).await?;
        for message in picked {
            loaded.picked.push(message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    if let Some(pick) = keys.polls {
        let limit = i64::try_from(pick.limit).unwrap_or(i64::MAX);
        let silent_since = now - millis(pick.after);
        let due: Vec<MessageRecord> =
            sqlx::query_as(sql::PG_PICK_POLL_DUE).bind(now).bind(silent_since).bind(limit).fetch_all(&mut *conn).await?;
        let room = limit - i64::try_from(due.len()).unwrap_or(limit);
        let fresh: Vec<MessageRecord> = if room > 0 {
            sqlx::query_as(sql::PG_PICK_UNPOLLED)
                .bind(silent_since)
                .bind(now - millis(pick.max_age))
                .bind(room)
                .fetch_all(&mut *conn)
                .await?
        } else {
            Vec::new()
        };
        for message in due.into_iter().chain(fresh) {
            loaded.polled.push(message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    if !keys.ids.is_empty() || !keys.sids.is_empty() {
        let rows: Vec<MessageRecord> = sqlx::query_as(sql::PG_LOAD_MESSAGES)
            .bind(texts(&keys.ids))
            .bind(texts(keys.sids.iter().map(|s| s.as_str())))
            .fetch_all(&mut *conn)
            .await?;
        loaded.messages.extend(rows.into_iter().map(|m| (m.id, m)));
    }
    if !keys.stopping.is_empty() {
        let rows: Vec<MessageRecord> =
            sqlx::query_as(sql::PG_LOAD_SENDABLE_TO).bind(texts(keys.stopping.iter().map(|p| p.as_e164()))).fetch_all(&mut *conn).await?;
        for message in rows {
            loaded.sendable_to.entry(message.to.clone()).or_default().push(message.id);
            loaded.messages.insert(message.id, message);
        }
    }
    if !keys.unmatched.is_empty() {
        let rows: Vec<UnmatchedCallback> =
            sqlx::query_as(sql::PG_LOAD_UNMATCHED).bind(texts(keys.unmatched.iter().map(|s| s.as_str()))).fetch_all(&mut *conn).await?;
        for row in rows {
            loaded.unmatched.entry(row.message_sid.clone()).or_default().push(row);
        }
    }
    if !keys.last_senders.is_empty() {
        let rows: Vec<(PhoneNumber, Origin)> = sqlx::query_as(sql::PG_LOAD_LAST_SENDERS)
            .bind(texts(keys.last_senders.iter().map(|p| p.as_e164())))
            .fetch_all(&mut *conn)
            .await?;
        loaded.last_senders.extend(rows);
    }
    let stopped = loaded.sendable_to.values().flatten().copied();
    let claimable: BTreeSet<MessageId> = loaded.picked.iter().copied().chain(keys.claim_ids.iter().copied()).chain(stopped).collect();
    let mut phones: BTreeSet<PhoneNumber> = keys.phones;
    phones.extend(claimable.iter().filter_map(|id| loaded.messages.get(id)).map(|m| m.to.clone()));
    if !phones.is_empty() {
        let rows: Vec<Contact> =
            sqlx::query_as(sql::PG_LOAD_CONTACTS).bind(texts(phones.iter().map(|p| p.as_e164()))).fetch_all(&mut *conn).await?;
        loaded.contacts.extend(rows.into_iter().map(|c| (c.phone.clone(), c)));
    }
    if !claimable.is_empty() {
        let rows: Vec<AttemptRecord> = sqlx::query_as(sql::PG_LOAD_UNRESOLVED).bind(texts(&claimable)).fetch_all(&mut *conn).await?;
        loaded.unresolved.extend(rows.into_iter().map(|a| (a.message_id, a)));
    }
    Ok(loaded)
}

/// A message with the idempotency key it holds.
#[derive(sqlx::FromRow)]
struct KeyedMessage {
    key: String,
    #[sqlx(flatten)]
    message: MessageRecord,
}

async fn write(conn: &mut PgConnection, plan: &Plan) -> Result<(), StoreError> {
    let changes = &plan.changes;
    if !changes.inserted.is_empty() {
        let rows: Vec<_> = plan.inserted_rows().collect();
        let m = |f: fn(&MessageRecord) -> Option<i64>| rows.iter().map(|(r, _, _)| f(r)).collect::<Vec<_>>();
        sqlx::query(sql::PG_INSERT_MESSAGES)
            .bind(texts(rows.iter().map(|(r, _, _)| r.id)))
            .bind(rows.iter().map(|(r, _, _)| r.message_sid.as_ref().map(|s| s.as_str().to_owned())).collect::<Vec<_>>())
            .bind(texts(rows.iter().map(|(r, _, _)| r.direction.as_str())))
            .bind(texts(rows.iter().map(|(r, _, _)| r.from.as_str())))
            .bind(texts(rows.iter().map(|(r, _, _)| r.to.as_e164())))
            .bind(rows.iter().map(|(r, _, _)| r.body.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, _, media)| media.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.content_sid.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.content_variables.clone()).collect::<Vec<_>>())
            .bind(texts(rows.iter().map(|(r, _, _)| r.status().as_str())))
            .bind(m(|r| r.lifecycle.error_code))
            .bind(rows.iter().map(|(r, _, _)| r.error_message.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.priority.get()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.attempts).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.reference.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.metadata.clone()).collect::<Vec<_>>())
            .bind(m(|r| r.next_attempt_at))
            .bind(rows.iter().map(|(r, _, _)| r.counted.0).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.callbacks_seen).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.created_at).collect::<Vec<_>>())
            .bind(m(|r| r.lifecycle.queued_at))
            .bind(m(|r| r.lifecycle.sent_at))
            .bind(m(|r| r.lifecycle.delivered_at))
            .bind(m(|r| r.lifecycle.read_at))
            .bind(m(|r| r.lifecycle.failed_at))
            .bind(rows.iter().map(|(r, _, _)| r.lifecycle.last_status_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, key, _)| key.map(str::to_owned)).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.validity_s).collect::<Vec<_>>())
            .bind(m(|r| r.expires_at))
            .bind(rows.iter().map(|(r, _, _)| r.fallback_content_sid.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.fallback_content_variables.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.event_seq).collect::<Vec<_>>())
            .bind(rows.iter().map(|(r, _, _)| r.details.clone()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    let updated: Vec<&MessageRecord> = plan.updated_rows().collect();
    if !updated.is_empty() {
        let m = |f: fn(&MessageRecord) -> Option<i64>| updated.iter().map(|r| f(r)).collect::<Vec<_>>();
        sqlx::query(sql::PG_UPDATE_MESSAGES)
            .bind(texts(updated.iter().map(|r| r.id)))
            .bind(updated.iter().map(|r| r.message_sid.as_ref().map(|s| s.as_str().to_owned())).collect::<Vec<_>>())
            .bind(texts(updated.iter().map(|r| r.status().as_str())))
            .bind(m(|r| r.lifecycle.error_code))
            .bind(updated.iter().map(|r| r.error_message.clone()).collect::<Vec<_>>())
            .bind(updated.iter().map(|r| r.attempts).collect::<Vec<_>>())
            .bind(m(|r| r.next_attempt_at))
            .bind(updated.iter().map(|r| r.lease_owner.clone()).collect::<Vec<_>>())
            .bind(m(|r| r.lease_until))
            .bind(updated.iter().map(|r| r.counted.0).collect::<Vec<_>>())
            .bind(updated.iter().map(|r| r.callbacks_seen).collect::<Vec<_>>())
            .bind(m(|r| r.lifecycle.queued_at))
            .bind(m(|r| r.lifecycle.sent_at))
            .bind(m(|r| r.lifecycle.delivered_at))
            .bind(m(|r| r.lifecycle.read_at))
            .bind(m(|r| r.lifecycle.failed_at))
            .bind(updated.iter().map(|r| r.lifecycle.last_status_at).collect::<Vec<_>>())
            .bind(updated.iter().map(|r| r.attempt_base).collect::<Vec<_>>())
            .bind(m(|r| r.expires_at))
            .bind(updated.iter().map(|r| r.content_sid.clone()).collect::<Vec<_>>())
            .bind(updated.iter().map(|r| r.content_variables.clone()).collect::<Vec<_>>())
            .bind(updated.iter().map(|r| r.event_seq).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !changes.log.is_empty() {
        let log = &changes.log;
        sqlx::query(sql::PG_INSERT_LOG)
            .bind(texts(log.iter().map(|l| l.message_id)))
            .bind(log.iter().map(|l| l.previous_status.map(|s| s.as_str().to_owned())).collect::<Vec<_>>())
            .bind(texts(log.iter().map(|l| l.new_status.as_str())))
            .bind(log.iter().map(|l| i64::from(l.applied)).collect::<Vec<_>>())
            .bind(log.iter().map(|l| l.error_code).collect::<Vec<_>>())
            .bind(texts(log.iter().map(|l| l.source.as_str())))
            .bind(log.iter().map(|l| l.detail.clone()).collect::<Vec<_>>())
            .bind(log.iter().map(|l| l.occurred_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !changes.attempts_started.is_empty() {
        let a = &changes.attempts_started;
        sqlx::query(sql::PG_INSERT_ATTEMPTS)
            .bind(texts(a.iter().map(|a| a.message_id)))
            .bind(a.iter().map(|a| a.attempt).collect::<Vec<_>>())
            .bind(a.iter().map(|a| a.worker.clone()).collect::<Vec<_>>())
            .bind(a.iter().map(|a| a.started_at).collect::<Vec<_>>())
            .bind(texts(a.iter().map(|a| a.outcome.as_str())))
            .execute(&mut *conn)
            .await?;
    }
    if !changes.attempts_finished.is_empty() {
        let a = &changes.attempts_finished;
        sqlx::query(sql::PG_FINISH_ATTEMPTS)
            .bind(texts(a.iter().map(|a| a.message_id)))
            .bind(a.iter().map(|a| a.attempt).collect::<Vec<_>>())
            .bind(texts(a.iter().map(|a| a.outcome.as_str())))
            .bind(a.iter().map(|a| a.finished_at).collect::<Vec<_>>())
            .bind(a.iter().map(|a| a.http_status).collect::<Vec<_>>())
            .bind(a.iter().map(|a| a.error_code).collect::<Vec<_>>())
            .bind(a.iter().map(|a| a.error_message.clone()).collect::<Vec<_>>())
            .bind(a.iter().map(|a| a.message_sid.as_ref().map(|s| s.as_str().to_owned())).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !changes.unmatched_consumed.is_empty() {
        sqlx::query("DELETE FROM unmatched_callbacks WHERE message_sid = ANY($1)")
            .bind(texts(changes.unmatched_consumed.iter().map(|s| s.as_str())))
            .execute(&mut *conn)
            .await?;
    }
    let unmatched: Vec<&UnmatchedCallback> =
        changes.unmatched_new.iter().filter(|c| !changes.unmatched_consumed.contains(&c.message_sid)).collect();
    if !unmatched.is_empty() {
        sqlx::query(sql::PG_INSERT_UNMATCHED)
            .bind(texts(unmatched.iter().map(|c| c.message_sid.as_str())))
            .bind(texts(unmatched.iter().map(|c| c.status.as_str())))
            .bind(unmatched.iter().map(|c| c.error_code).collect::<Vec<_>>())
            .bind(unmatched.iter().map(|c| c.received_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !changes.polls.is_empty() {
        sqlx::query(sql::PG_SET_POLL_AT)
            .bind(texts(changes.polls.iter().map(|(id, _)| id)))
            .bind(changes.polls.iter().map(|(_, at)| *at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !changes.events.is_empty() {
        let e = &changes.events;
        let deliveries: Vec<(&str, &str, i64)> =
            e.iter().flat_map(|e| e.endpoints.iter().map(move |d| (e.id.as_str(), d.as_str(), e.created_at))).collect();
        sqlx::query(sql::PG_INSERT_EVENTS)
            .bind(e.iter().map(|e| e.id.clone()).collect::<Vec<_>>())
            .bind(texts(e.iter().map(|e| e.event_type.as_str())))
            .bind(e.iter().map(|e| e.message_id.map(|id| id.to_string())).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.seq).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.created_at).collect::<Vec<_>>())
            .bind(texts(deliveries.iter().map(|d| d.0)))
            .bind(texts(deliveries.iter().map(|d| d.1)))
            .bind(deliveries.iter().map(|d| d.2).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    write_contacts(conn, plan).await?;
    write_rollups(conn, plan).await
}

async fn write_contacts(conn: &mut PgConnection, plan: &Plan) -> Result<(), StoreError> {
    let contacts = super::batch::merged_contact_changes(&plan.changes.contacts);
    if contacts.is_empty() {
        return Ok(());
    }
    for statement in [sql::PG_INSERT_CONTACTS, sql::PG_MERGE_CONTACTS] {
        sqlx::query(statement)
            .bind(texts(contacts.iter().map(|c| c.phone.as_e164())))
            .bind(contacts.iter().map(|c| c.profile_name.clone()).collect::<Vec<_>>())
            .bind(contacts.iter().map(|c| c.wa_id.clone()).collect::<Vec<_>>())
            .bind(contacts.iter().map(|c| c.at).collect::<Vec<_>>())
            .bind(contacts.iter().map(|c| super::batch::opt_code(c.opt)).collect::<Vec<_>>())
            .bind(contacts.iter().map(|c| c.inbound_at).collect::<Vec<_>>())
            .bind(contacts.iter().map(|c| c.suppress).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn write_rollups(conn: &mut PgConnection, plan: &Plan) -> Result<(), StoreError> {
    let book = &plan.changes.rollups;
    if !book.counters.is_empty() {
        let (keys, counters): (Vec<&RollupKey>, Vec<&Counters>) = book.counters.iter().unzip();
        sqlx::query(sql::PG_UPSERT_METRICS)
            .bind(texts(keys.iter().map(|k| k.granularity.as_str())))
            .bind(keys.iter().map(|k| k.bucket_start).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.phone.clone()).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.total).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.sent).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.delivered).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.read).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.failed).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.undelivered).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.time_sum_ms).collect::<Vec<_>>())
            .bind(counters.iter().map(|c| c.time_count).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    for (statement, entries) in [(sql::PG_UPSERT_HISTOGRAM, &book.histogram), (sql::PG_UPSERT_ERRORS, &book.errors)] {
        if entries.is_empty() {
            continue;
        }
        sqlx::query(statement)
            .bind(texts(entries.keys().map(|(k, _)| k.granularity.as_str())))
            .bind(entries.keys().map(|(k, _)| k.bucket_start).collect::<Vec<_>>())
            .bind(entries.keys().map(|(k, _)| k.phone.clone()).collect::<Vec<_>>())
            .bind(entries.keys().map(|(_, v)| *v).collect::<Vec<_>>())
            .bind(entries.values().copied().collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !book.phones.is_empty() {
        sqlx::query(sql::PG_UPSERT_PHONES)
            .bind(book.phones.keys().cloned().collect::<Vec<_>>())
            .bind(book.phones.values().map(|p| p.total).collect::<Vec<_>>())
            .bind(book.phones.values().map(|p| p.success).collect::<Vec<_>>())
            .bind(book.phones.values().map(|p| p.failure).collect::<Vec<_>>())
            .bind(book.phones.values().map(|p| p.read).collect::<Vec<_>>())
            .bind(book.phones.values().map(|p| p.last_message_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    if !book.phone_errors.is_empty() {
        let e = &book.phone_errors;
        sqlx::query(sql::PG_INSERT_PHONE_ERRORS)
            .bind(e.iter().map(|e| e.phone.clone()).collect::<Vec<_>>())
            .bind(texts(e.iter().map(|e| e.message_id)))
            .bind(e.iter().map(|e| e.error_code).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.error_message.clone()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
