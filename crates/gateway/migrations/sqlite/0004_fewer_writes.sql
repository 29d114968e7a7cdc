-- Fewer writes per message (issue 9).
--
-- Status-log and attempt rows are written only by the batch writer, for messages it holds in the
-- same transaction, and messages are never deleted: the foreign keys go, as on PostgreSQL
-- (SQLite drops a constraint by rebuilding the table).
CREATE TABLE message_status_log_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL,
    previous_status TEXT,
    new_status      TEXT NOT NULL,
    applied         BIGINT NOT NULL,
    error_code      BIGINT,
    source          TEXT NOT NULL,
    detail          TEXT,
    occurred_at     BIGINT NOT NULL
);
INSERT INTO message_status_log_new SELECT id, message_id, previous_status, new_status, applied, error_code, source, detail, occurred_at
    FROM message_status_log;
DROP TABLE message_status_log;
ALTER TABLE message_status_log_new RENAME TO message_status_log;
CREATE INDEX message_status_log_message ON message_status_log (message_id, id);

CREATE TABLE send_attempts_new (
    message_id    TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    worker        TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    outcome       TEXT NOT NULL,
    http_status   BIGINT,
    error_code    BIGINT,
    error_message TEXT,
    message_sid   TEXT,
    PRIMARY KEY (message_id, attempt)
);
INSERT INTO send_attempts_new SELECT message_id, attempt, worker, started_at, finished_at, outcome, http_status, error_code,
    error_message, message_sid FROM send_attempts;
DROP TABLE send_attempts;
ALTER TABLE send_attempts_new RENAME TO send_attempts;

-- Most messages have no idempotency key: index only those that have one.
DROP INDEX messages_idempotency_key;
CREATE UNIQUE INDEX messages_idempotency_key ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- A recipient's buckets are computed from its messages when asked; only the all-phones shards
-- are kept as rollups.
DELETE FROM delivery_metrics WHERE phone NOT LIKE '*%';
DELETE FROM delivery_time_histogram WHERE phone NOT LIKE '*%';
DELETE FROM delivery_errors WHERE phone NOT LIKE '*%';
