//! Event endpoints and the outbox's deliveries: the endpoints the application manages, the
//! dispatcher's claims and results (a handful of statements per round, whatever its size), and
//! what the API shows of events, deliveries and attempts.
//!
//! Events themselves are written by the batched writer, in the transaction of the change they
//! report (`write::events`). These statements touch only the outbox's own tables, so they run on
//! the read pool (on SQLite each is one write statement, or a transaction that writes first, so
//! it waits its turn behind the writer instead of failing).

use super::db::{Pool, Store, on_pool};
use super::error::StoreError;
use super::write::routes::EventRoutes;
use crate::domain::{EventType, EventTypes, MessageId, UnixMillis};

/// Where an endpoint comes from.
pub const ORIGIN_API: &str = "api";
/// From `EVENTS_URL` / `INBOUND_FORWARD_URL`.
pub const ORIGIN_CONFIG: &str = "config";
/// The gateway's own inbound handlers, run in process.
pub const ORIGIN_INTERNAL: &str = "internal";
pub use crate::domain::HANDLERS_ENDPOINT;

/// A stored endpoint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EndpointRecord {
    /// `ep_…`, or a configured endpoint's fixed id.
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// The application's note.
    pub description: Option<String>,
    /// What it wants.
    #[sqlx(try_from = "String")]
    pub event_types: TypesColumn,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_secret_until: Option<UnixMillis>,
    /// Whether events go to it.
    #[sqlx(try_from = "i64")]
    pub enabled: BoolColumn,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Since when every attempt to it failed (none has succeeded since).
    pub failing_since: Option<UnixMillis>,
    /// `api`, `config` or `internal`.
    pub origin: String,
    /// When it was created.
    pub created_at: UnixMillis,
    /// When it last changed.
    pub updated_at: UnixMillis,
}

impl EndpointRecord {
    /// The secrets that sign a delivery at `now`: the current one, and the previous one during
    /// its grace period.
    pub fn signing_secrets(&self, now: UnixMillis) -> Vec<&str> {
        let previous = self.previous_secret.as_deref().filter(|_| self.previous_secret_until.is_some_and(|until| until > now));
        std::iter::once(self.secret.as_str()).chain(previous).collect()
    }
}

/// `event_types` as stored: names separated by spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypesColumn(pub EventTypes);

impl From<String> for TypesColumn {
    fn from(text: String) -> Self {
        Self(EventTypes::from_column(&text))
    }
}

/// A 0/1 column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoolColumn(pub bool);

impl From<i64> for BoolColumn {
    fn from(v: i64) -> Self {
        Self(v != 0)
    }
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Its id.
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// A note.
    pub description: Option<String>,
    /// What it wants.
    pub event_types: EventTypes,
    /// Its secret (`whsec_…`).
    pub secret: String,
    /// `api`, `config` or `internal`.
    pub origin: &'static str,
}

/// A change to an endpoint; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    /// A new URL.
    pub url: Option<String>,
    /// A new note (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New event types.
    pub event_types: Option<EventTypes>,
    /// Enable (clearing its failure record) or disable by hand.
    pub enabled: Option<bool>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    /// `evt_…`: the `webhook-id` of every delivery of it.
    pub id: String,
    /// Its type.
    #[sqlx(try_from = "String")]
    pub event_type: TypeColumn,
    /// The message it is about.
    pub message_id: Option<MessageId>,
    /// Its place in the message's events.
    pub seq: i64,
    /// The payload, as sent.
    pub payload: String,
    /// When it was stored.
    pub created_at: UnixMillis,
}

/// `event_type` as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeColumn(pub Option<EventType>);

impl From<String> for TypeColumn {
    fn from(text: String) -> Self {
        Self(text.parse().ok())
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    /// The event.
    pub event_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: UnixMillis,
    /// When delivering it began (or was redriven): it is given up 24 hours later.
    pub created_at: UnixMillis,
    /// The last attempt's time.
    pub last_attempt_at: Option<UnixMillis>,
    /// The last answer's status code.
    pub last_status_code: Option<i64>,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<UnixMillis>,
    /// What the handlers answered (the handlers' endpoint only).
    pub result: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventAttemptRecord {
    /// The event.
    pub event_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its number (1 for the first).
    pub attempt: i64,
    /// When it was made.
    pub attempted_at: UnixMillis,
    /// The answer's status code (none if there was no answer).
    pub status_code: Option<i64>,
    /// How long it took.
    pub latency_ms: i64,
    /// The start of the answer's body.
    pub response: Option<String>,
    /// Why it failed, when there was no answer.
    pub error: Option<String>,
}

/// A delivery the dispatcher took.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    /// The event.
    pub event_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// This attempt's number.
    pub attempts: i64,
    /// When delivering began.
    pub created_at: UnixMillis,
    /// The payload.
    pub payload: String,
    /// The type.
    pub event_type: String,
}

/// What one attempt came to, as the dispatcher records it.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    /// The event.
    pub event_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The attempt's number.
    pub attempt: i64,
    /// When it was made.
    pub attempted_at: UnixMillis,
    /// The answer's status code.
    pub status_code: Option<i64>,
    /// How long it took.
    pub latency_ms: i64,
    /// The start of the answer's body.
    pub response: Option<String>,
    /// Why it failed without an answer.
    pub error: Option<String>,
    /// What becomes of the delivery.
    pub next: NextStep,
}

/// A result as its delivery row is written.
struct RecordedRow<'a> {
    result: &'a DeliveryResult,
    status: &'static str,
    next_at: UnixMillis,
    delivered_at: Option<UnixMillis>,
    answer: Option<String>,
    error: Option<String>,
}

impl<'a> RecordedRow<'a> {
    fn of(r: &'a DeliveryResult) -> Self {
        let (status, next_at, delivered_at, answer) = match &r.next {
            NextStep::Delivered(answer) => ("delivered", r.attempted_at, Some(r.attempted_at), answer.clone()),
            NextStep::Retry(at) => ("pending", *at, None, None),
            NextStep::Failed => ("failed", r.attempted_at, None, None),
        };
        let error = r.error.clone().or_else(|| r.status_code.filter(|c| !(200..300).contains(c)).map(|c| format!("answered {c}")));
        Self { result: r, status, next_at, delivered_at, answer, error }
    }
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered (with the handlers' answer, for the handlers' endpoint).
    Delivered(Option<String>),
    /// Tried again at this time.
    Retry(UnixMillis),
    /// Given up.
    Failed,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this message's.
    pub message_id: Option<MessageId>,
    /// Only this type.
    pub event_type: Option<EventType>,
    /// Only events with a delivery to this endpoint.
    pub endpoint_id: Option<String>,
    /// Only events with a delivery in this status (`pending`, `delivered`, `failed`).
    pub delivery_status: Option<String>,
    /// Older than this event id (ids sort by time), newest first.
    pub before: Option<String>,
    /// Page size.
    pub limit: i64,
}

impl Store {
    /// Reloads the routes the writers use from the enabled endpoints.
    pub async fn refresh_event_routes(&self) -> Result<EventRoutes, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, event_types FROM event_endpoints WHERE enabled = 1 ORDER BY id"
        ).fetch_all(pool).await?);
        let routes = EventRoutes {
            endpoints: rows.into_iter().map(|(id, types)| (id, EventTypes::from_column(&types))).filter(|(_, t)| !t.is_empty()).collect(),
        };
        self.outbox().set_routes(routes.clone());
        Ok(routes)
    }

    /// An endpoint changed through this process: the writers route by it, and the dispatcher
    /// uses it, from their next batch and round.
    async fn endpoints_changed(&self) -> Result<(), StoreError> {
        self.outbox().endpoints_changed();
        self.refresh_event_routes().await.map(drop)
    }

    /// Stores a new endpoint and routes events to it from now on.
    pub async fn create_endpoint(&self, endpoint: &NewEndpoint, now: UnixMillis) -> Result<EndpointRecord, StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO event_endpoints (id, url, description, event_types, secret, enabled, origin, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7)"
        )
        .bind(&endpoint.id).bind(&endpoint.url).bind(&endpoint.description).bind(endpoint.event_types.to_column())
        .bind(&endpoint.secret).bind(endpoint.origin).bind(now)
        .execute(pool).await?.rows_affected());
        self.endpoints_changed().await?;
        self.endpoint(&endpoint.id).await?.ok_or_else(|| StoreError::Unavailable("the new endpoint vanished".into()))
    }

    /// Makes a configured endpoint match the configuration: created if missing; its URL, types
    /// and (when the configuration gives one) secret set. Its enabled state is left alone, so an
    /// endpoint disabled for failing stays disabled across restarts until enabled by hand.
    pub async fn upsert_config_endpoint(&self, endpoint: &NewEndpoint, secret_given: bool, now: UnixMillis) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO event_endpoints (id, url, description, event_types, secret, enabled, origin, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7) \
             ON CONFLICT (id) DO UPDATE SET url = excluded.url, event_types = excluded.event_types, \
             description = excluded.description, origin = excluded.origin, \
             secret = CASE WHEN $8 = 1 THEN excluded.secret ELSE event_endpoints.secret END, \
             enabled = CASE WHEN event_endpoints.disabled_reason = 'no longer configured' THEN 1 ELSE event_endpoints.enabled END, \
             disabled_reason = CASE WHEN event_endpoints.disabled_reason = 'no longer configured' THEN NULL \
                 ELSE event_endpoints.disabled_reason END, \
             updated_at = excluded.updated_at"
        )
        .bind(&endpoint.id).bind(&endpoint.url).bind(&endpoint.description).bind(endpoint.event_types.to_column())
        .bind(&endpoint.secret).bind(endpoint.origin).bind(now).bind(i64::from(secret_given))
        .execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Disables the configured endpoints that are not in `keep`: the configuration no longer
    /// names them. The handlers' endpoint is never retired: an instance without handlers (a
    /// worker process, say) must not stop another's; a delivery to it that finds no handler is
    /// simply done.
    pub async fn retire_config_endpoints(&self, keep: &[&str], now: UnixMillis) -> Result<(), StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id FROM event_endpoints WHERE origin = 'config' AND enabled = 1"
        ).fetch_all(pool).await?);
        for (id,) in rows.into_iter().filter(|(id,)| !keep.contains(&id.as_str())) {
            on_pool!(self, pool => sqlx::query(
                "UPDATE event_endpoints SET enabled = 0, disabled_reason = 'no longer configured', updated_at = $2 WHERE id = $1"
            ).bind(&id).bind(now).execute(pool).await?.rows_affected());
        }
        Ok(())
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM event_endpoints WHERE id = $1").bind(id).fetch_optional(pool).await?))
    }

    /// Every endpoint but the internal one, oldest first.
    pub async fn endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT * FROM event_endpoints WHERE origin <> 'internal' ORDER BY created_at, id"
        ).fetch_all(pool).await?))
    }

    /// Every endpoint, the internal one too (the dispatcher's view).
    pub async fn all_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM event_endpoints").fetch_all(pool).await?))
    }

    /// Changes an endpoint; `None` if there is none with this id.
    pub async fn update_endpoint(&self, id: &str, patch: &EndpointPatch, now: UnixMillis) -> Result<Option<EndpointRecord>, StoreError> {
        let Some(current) = self.endpoint(id).await? else { return Ok(None) };
        let enabled = patch.enabled.unwrap_or(current.enabled.0);
        // Enabling by hand forgets the failures; disabling by hand says so.
        let (failing_since, reason) = match patch.enabled {
            Some(true) => (None, None),
            Some(false) => (current.failing_since, Some("disabled by the application".to_owned())),
            None => (current.failing_since, current.disabled_reason.clone()),
        };
        on_pool!(self, pool => sqlx::query(
            "UPDATE event_endpoints SET url = $2, description = $3, event_types = $4, enabled = $5, disabled_reason = $6, \
             failing_since = $7, updated_at = $8 WHERE id = $1"
        )
        .bind(id)
        .bind(patch.url.as_ref().unwrap_or(&current.url))
        .bind(patch.description.clone().unwrap_or(current.description))
        .bind(patch.event_types.unwrap_or(current.event_types.0).to_column())
        .bind(i64::from(enabled))
        .bind(reason)
        .bind(failing_since)
        .bind(now)
        .execute(pool).await?.rows_affected());
        self.endpoints_changed().await?;
        self.endpoint(id).await
    }

    /// Gives an endpoint a new secret; the old one goes on signing (beside the new) until
    /// `previous_until`.
    pub async fn rotate_endpoint_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: UnixMillis,
        now: UnixMillis,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE event_endpoints SET previous_secret = secret, previous_secret_until = $3, secret = $2, updated_at = $4 \
             WHERE id = $1"
        ).bind(id).bind(secret).bind(previous_until).bind(now).execute(pool).await?.rows_affected());
        self.outbox().endpoints_changed();
        self.endpoint(id).await
    }

    /// Takes up to `limit` due deliveries to enabled endpoints for `lease_ms` (their next
    /// attempt is pushed back by that much, so another dispatcher leaves them alone, and a
    /// dispatcher that dies lets them come due again). The handlers' deliveries are taken only
    /// once `handler_grace_ms` old: the webhook that stored the message runs them first. The
    /// `resting` endpoints (failing: the dispatcher waits for their next retry) are left out.
    pub async fn claim_deliveries(
        &self,
        now: UnixMillis,
        limit: i64,
        lease_ms: i64,
        handler_grace_ms: i64,
        resting: &[String],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let resting: Vec<&str> = resting.iter().map(String::as_str).collect();
        let resting_list = serde_json::to_string(&resting).unwrap_or_else(|_| "[]".into());
        let rows = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "WITH due AS (SELECT d.event_id, d.endpoint_id FROM event_deliveries d \
                       JOIN event_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1 \
                       WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
                         AND (e.origin <> 'internal' OR d.created_at <= $1 - $4) AND d.endpoint_id <> ALL($5) \
                       ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED) \
                     UPDATE event_deliveries d SET next_attempt_at = $1 + $3, attempts = d.attempts + 1 \
                     FROM due, events ev \
                     WHERE d.event_id = due.event_id AND d.endpoint_id = due.endpoint_id AND ev.id = d.event_id \
                     RETURNING d.event_id, d.endpoint_id, d.attempts, d.created_at, ev.payload, ev.event_type",
                )
                .bind(now)
                .bind(limit)
                .bind(lease_ms)
                .bind(handler_grace_ms)
                .bind(&resting)
                .fetch_all(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                // One dispatcher per SQLite file (one process): the update takes the rows, the
                // select after it reads what it took.
                let mut tx = pool.begin().await?;
                let taken: Vec<(String, String)> = sqlx::query_as(
                    "UPDATE event_deliveries SET next_attempt_at = $1 + $3, attempts = attempts + 1 \
                     WHERE (event_id, endpoint_id) IN (SELECT d.event_id, d.endpoint_id FROM event_deliveries d \
                       JOIN event_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1 \
                       WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
                         AND (e.origin <> 'internal' OR d.created_at <= $1 - $4) \
                         AND d.endpoint_id NOT IN (SELECT value FROM json_each($5)) \
                       ORDER BY d.next_attempt_at LIMIT $2) \
                     RETURNING event_id, endpoint_id",
                )
                .bind(now)
                .bind(limit)
                .bind(lease_ms)
                .bind(handler_grace_ms)
                .bind(&resting_list)
                .fetch_all(&mut *tx)
                .await?;
                let mut rows = Vec::with_capacity(taken.len());
                for (event_id, endpoint_id) in taken {
                    let row: DueDelivery = sqlx::query_as(
                        "SELECT d.event_id, d.endpoint_id, d.attempts, d.created_at, ev.payload, ev.event_type \
                         FROM event_deliveries d JOIN events ev ON ev.id = d.event_id WHERE d.event_id = $1 AND d.endpoint_id = $2",
                    )
                    .bind(&event_id)
                    .bind(&endpoint_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    rows.push(row);
                }
                tx.commit().await?;
                rows
            }
        };
        Ok(rows)
    }

    /// When the next delivery to an enabled application endpoint is due (the dispatcher sleeps
    /// until then when nothing is due now).
    pub async fn next_delivery_at(&self, resting: &[String]) -> Result<Option<UnixMillis>, StoreError> {
        let row: (Option<i64>,) = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT MIN(d.next_attempt_at) FROM event_deliveries d JOIN event_endpoints e ON e.id = d.endpoint_id \
                     WHERE d.status = 'pending' AND e.enabled = 1 AND e.origin <> 'internal' AND d.endpoint_id <> ALL($1)",
                )
                .bind(resting)
                .fetch_one(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT MIN(d.next_attempt_at) FROM event_deliveries d JOIN event_endpoints e ON e.id = d.endpoint_id \
                     WHERE d.status = 'pending' AND e.enabled = 1 AND e.origin <> 'internal' \
                     AND d.endpoint_id NOT IN (SELECT value FROM json_each($1))",
                )
                .bind(serde_json::to_string(resting).unwrap_or_else(|_| "[]".into()))
                .fetch_one(pool)
                .await?
            }
        };
        Ok(row.0)
    }

    /// Records a round of attempts: each delivery's new state and its attempt row, and each
    /// endpoint's failure record (cleared by a success; an endpoint failing for longer than
    /// `disable_after_ms` is disabled). Returns the endpoints disabled now.
    pub async fn record_deliveries(
        &self,
        results: &[DeliveryResult],
        now: UnixMillis,
        disable_after_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut succeeded: Vec<&str> = Vec::new();
        let mut failed: Vec<&str> = Vec::new();
        for r in results {
            let list = if matches!(r.next, NextStep::Delivered(_)) { &mut succeeded } else { &mut failed };
            if !list.contains(&r.endpoint_id.as_str()) {
                list.push(&r.endpoint_id);
            }
        }
        // An endpoint that answered at least once in this round is not failing. In id order, so
        // that two instances recording at once lock the endpoints' rows in the same order.
        failed.retain(|id| !succeeded.contains(id));
        succeeded.sort_unstable();
        failed.sort_unstable();
        let reason = format!(
            "disabled automatically: every delivery failed for {} (EVENTS_DISABLE_AFTER_MS); enable it again by hand",
            crate::domain::clock::span_words(disable_after_ms)
        );
        let rows: Vec<RecordedRow<'_>> = results.iter().map(RecordedRow::of).collect();
        let disabled: Vec<String> = match self.pool() {
            Pool::Postgres(pool) => {
                // A handful of set-based statements per round, whatever its size.
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "UPDATE event_deliveries d SET status = v.status, next_attempt_at = v.next_at, last_attempt_at = v.at, \
                     last_status_code = v.code, last_error = v.error, delivered_at = v.delivered_at, result = v.result \
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], \
                     $8::bigint[], $9::text[], $10::bigint[]) AS v(event_id, endpoint_id, status, next_at, at, code, error, \
                     delivered_at, result, attempt) \
                     WHERE d.event_id = v.event_id AND d.endpoint_id = v.endpoint_id AND d.status = 'pending' AND d.attempts = v.attempt",
                )
                .bind(rows.iter().map(|r| r.result.event_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.endpoint_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.next_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.attempted_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.status_code).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.delivered_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.answer.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.attempt).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO event_attempts (event_id, endpoint_id, attempt, attempted_at, status_code, latency_ms, response, error) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])",
                )
                .bind(rows.iter().map(|r| r.result.event_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.endpoint_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.attempt).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.attempted_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.status_code).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.latency_ms).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.response.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.result.error.clone()).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
                if !succeeded.is_empty() {
                    sqlx::query("UPDATE event_endpoints SET failing_since = NULL WHERE id = ANY($1) AND failing_since IS NOT NULL")
                        .bind(&succeeded)
                        .execute(&mut *tx)
                        .await?;
                }
                let mut disabled = Vec::new();
                if !failed.is_empty() {
                    sqlx::query("UPDATE event_endpoints SET failing_since = $2 WHERE id = ANY($1) AND failing_since IS NULL")
                        .bind(&failed)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    disabled = sqlx::query_scalar(
                        "UPDATE event_endpoints SET enabled = 0, updated_at = $2, disabled_reason = $4 \
                         WHERE id = ANY($1) AND enabled = 1 AND origin <> 'internal' AND failing_since <= $2 - $3 RETURNING id",
                    )
                    .bind(&failed)
                    .bind(now)
                    .bind(disable_after_ms)
                    .bind(&reason)
                    .fetch_all(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                disabled
            }
            Pool::Sqlite(pool) => {
                // In process: a statement per row costs microseconds. The transaction writes first,
                // so it waits its turn behind the writer.
                let mut tx = pool.begin().await?;
                for r in &rows {
                    // Only the attempt that holds the delivery records its fate (a late result of
                    // an earlier attempt, or one a webhook has settled, changes nothing).
                    sqlx::query(
                        "UPDATE event_deliveries SET status = $3, next_attempt_at = $4, last_attempt_at = $5, last_status_code = $6, \
                         last_error = $7, delivered_at = $8, result = $9 WHERE event_id = $1 AND endpoint_id = $2 \
                         AND status = 'pending' AND attempts = $10",
                    )
                    .bind(&r.result.event_id)
                    .bind(&r.result.endpoint_id)
                    .bind(r.status)
                    .bind(r.next_at)
                    .bind(r.result.attempted_at)
                    .bind(r.result.status_code)
                    .bind(r.error.clone())
                    .bind(r.delivered_at)
                    .bind(r.answer.clone())
                    .bind(r.result.attempt)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO event_attempts (event_id, endpoint_id, attempt, attempted_at, status_code, latency_ms, response, error) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&r.result.event_id)
                    .bind(&r.result.endpoint_id)
                    .bind(r.result.attempt)
                    .bind(r.result.attempted_at)
                    .bind(r.result.status_code)
                    .bind(r.result.latency_ms)
                    .bind(&r.result.response)
                    .bind(&r.result.error)
                    .execute(&mut *tx)
                    .await?;
                }
                for id in &succeeded {
                    sqlx::query("UPDATE event_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                let mut disabled = Vec::new();
                for id in &failed {
                    sqlx::query("UPDATE event_endpoints SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL")
                        .bind(*id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let done = sqlx::query(
                        "UPDATE event_endpoints SET enabled = 0, updated_at = $2, disabled_reason = $4 \
                         WHERE id = $1 AND enabled = 1 AND origin <> 'internal' AND failing_since <= $2 - $3",
                    )
                    .bind(*id)
                    .bind(now)
                    .bind(disable_after_ms)
                    .bind(&reason)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() > 0 {
                        disabled.push((*id).to_owned());
                    }
                }
                tx.commit().await?;
                disabled
            }
        };
        if !disabled.is_empty() {
            self.endpoints_changed().await?;
        }
        Ok(disabled)
    }

    /// The handlers' delivery of the `message.received` event of incoming message `id`: whether
    /// the handlers ran, and what they answered.
    pub async fn handled(&self, id: MessageId) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT d.* FROM event_deliveries d JOIN events ev ON ev.id = d.event_id \
             WHERE ev.message_id = $1 AND ev.event_type = 'message.received' AND d.endpoint_id = 'handlers'"
        ).bind(id).fetch_optional(pool).await?))
    }

    /// Marks the handlers' delivery of an event done, with their answer (the webhook answers
    /// with it); false if it was done already, or a dispatcher has taken it (its claim counts an
    /// attempt; it sends the answer as a message instead).
    pub async fn mark_handled(&self, event_id: &str, reply: Option<&str>, now: UnixMillis) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE event_deliveries SET status = 'delivered', delivered_at = $2, last_attempt_at = $2, result = $3, \
             attempts = attempts + 1 WHERE event_id = $1 AND endpoint_id = 'handlers' AND status = 'pending' \
             AND attempts = 0"
        ).bind(event_id).bind(now).bind(reply).execute(pool).await?.rows_affected());
        Ok(done > 0)
    }

    /// Events matching `filter`, newest first.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT * FROM events ev WHERE ($1 IS NULL OR ev.message_id = $1) AND ($2 IS NULL OR ev.event_type = $2) \
             AND ($3 IS NULL OR ev.id < $3) \
             AND ($4 IS NULL OR EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = ev.id AND d.endpoint_id = $4 \
                  AND ($5 IS NULL OR d.status = $5))) \
             AND ($5 IS NULL OR EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = ev.id AND d.status = $5 \
                  AND d.endpoint_id <> 'handlers')) \
             ORDER BY ev.id DESC LIMIT $6"
        )
        .bind(filter.message_id.map(|id| id.to_string()))
        .bind(filter.event_type.map(EventType::as_str))
        .bind(&filter.before)
        .bind(&filter.endpoint_id)
        .bind(&filter.delivery_status)
        .bind(filter.limit)
        .fetch_all(pool).await?))
    }

    /// One event.
    pub async fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT * FROM events WHERE id = $1").bind(id).fetch_optional(pool).await?))
    }

    /// The deliveries of these events (the handlers' left out).
    pub async fn deliveries(&self, event_ids: &[String]) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut all = Vec::new();
        for id in event_ids {
            let rows: Vec<DeliveryRecord> = on_pool!(self, pool => sqlx::query_as(
                "SELECT * FROM event_deliveries WHERE event_id = $1 AND endpoint_id <> 'handlers' ORDER BY endpoint_id"
            ).bind(id).fetch_all(pool).await?);
            all.extend(rows);
        }
        Ok(all)
    }

    /// Delivery attempts, newest first: of one event, or of one endpoint.
    pub async fn event_attempts(
        &self,
        event_id: Option<&str>,
        endpoint_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventAttemptRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT event_id, endpoint_id, attempt, attempted_at, status_code, latency_ms, response, error FROM event_attempts \
             WHERE ($1 IS NULL OR event_id = $1) AND ($2 IS NULL OR endpoint_id = $2) AND endpoint_id <> 'handlers' \
             ORDER BY attempted_at DESC, id DESC LIMIT $3"
        ).bind(event_id).bind(endpoint_id).bind(limit).fetch_all(pool).await?))
    }

    /// Delivers an event again: its failed deliveries (to `endpoint_id` only, if given) become
    /// pending, due now, with a fresh 24 hours. Returns how many.
    pub async fn redrive_event(&self, event_id: &str, endpoint_id: Option<&str>, now: UnixMillis) -> Result<u64, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE event_deliveries SET status = 'pending', next_attempt_at = $3, created_at = $3 \
             WHERE event_id = $1 AND ($2 IS NULL OR endpoint_id = $2) AND status = 'failed' AND endpoint_id <> 'handlers'"
        ).bind(event_id).bind(endpoint_id).bind(now).execute(pool).await?.rows_affected());
        if done > 0 {
            self.outbox().ring();
        }
        Ok(done)
    }

    /// Delivers again every failed delivery to an endpoint. Returns how many.
    pub async fn redrive_endpoint(&self, endpoint_id: &str, now: UnixMillis) -> Result<u64, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE event_deliveries SET status = 'pending', next_attempt_at = $2, created_at = $2 \
             WHERE endpoint_id = $1 AND status = 'failed'"
        ).bind(endpoint_id).bind(now).execute(pool).await?.rows_affected());
        if done > 0 {
            self.outbox().ring();
        }
        Ok(done)
    }
}
