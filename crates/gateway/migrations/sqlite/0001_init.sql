-- Messages, their status history, send attempts, the embedded queue, metrics rollups, contacts.
-- Times are Unix milliseconds (UTC); ids are UUID text. The PostgreSQL schema mirrors this one.

CREATE TABLE messages (
    id                TEXT PRIMARY KEY,
    message_sid       TEXT UNIQUE,
    direction         TEXT NOT NULL,
    from_addr         TEXT NOT NULL,
    to_addr           TEXT NOT NULL,
    body              TEXT,
    media_urls        TEXT,
    content_sid       TEXT,
    content_variables TEXT,
    status            TEXT NOT NULL,
    error_code        BIGINT,
    error_message     TEXT,
    priority          BIGINT NOT NULL,
    attempts          BIGINT NOT NULL DEFAULT 0,
    reference         TEXT,
    metadata          TEXT,
    next_attempt_at   BIGINT,
    lease_owner       TEXT,
    lease_until       BIGINT,
    counted           BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    queued_at         BIGINT,
    sent_at           BIGINT,
    delivered_at      BIGINT,
    read_at           BIGINT,
    failed_at         BIGINT,
    last_status_at    BIGINT NOT NULL
);
CREATE INDEX messages_created ON messages (created_at, id);
CREATE INDEX messages_to ON messages (to_addr, created_at);
CREATE INDEX messages_from ON messages (from_addr, created_at);
CREATE INDEX messages_status ON messages (status, created_at);
CREATE INDEX messages_due ON messages (status, next_attempt_at);

CREATE TABLE message_status_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL REFERENCES messages (id),
    previous_status TEXT,
    new_status      TEXT NOT NULL,
    applied         BIGINT NOT NULL,
    error_code      BIGINT,
    source          TEXT NOT NULL,
    detail          TEXT,
    occurred_at     BIGINT NOT NULL
);
CREATE INDEX message_status_log_message ON message_status_log (message_id, id);

CREATE TABLE send_attempts (
    message_id    TEXT NOT NULL REFERENCES messages (id),
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

CREATE TABLE queue_jobs (
    message_id  TEXT PRIMARY KEY,
    priority    BIGINT NOT NULL,
    run_at      BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX queue_jobs_ready ON queue_jobs (priority, run_at);

CREATE TABLE unmatched_callbacks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_sid TEXT NOT NULL,
    status      TEXT NOT NULL,
    error_code  BIGINT,
    received_at BIGINT NOT NULL
);
CREATE INDEX unmatched_callbacks_sid ON unmatched_callbacks (message_sid);

CREATE TABLE delivery_metrics (
    granularity          TEXT NOT NULL,
    bucket_start         BIGINT NOT NULL,
    phone                TEXT NOT NULL,
    total                BIGINT NOT NULL DEFAULT 0,
    sent                 BIGINT NOT NULL DEFAULT 0,
    delivered            BIGINT NOT NULL DEFAULT 0,
    read                 BIGINT NOT NULL DEFAULT 0,
    failed               BIGINT NOT NULL DEFAULT 0,
    undelivered          BIGINT NOT NULL DEFAULT 0,
    delivery_time_sum_ms BIGINT NOT NULL DEFAULT 0,
    delivery_time_count  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (granularity, phone, bucket_start)
);

CREATE TABLE delivery_time_histogram (
    granularity  TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    phone        TEXT NOT NULL,
    le_ms        BIGINT NOT NULL,
    count        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (granularity, phone, bucket_start, le_ms)
);

CREATE TABLE delivery_errors (
    granularity  TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    phone        TEXT NOT NULL,
    error_code   BIGINT NOT NULL,
    count        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (granularity, phone, bucket_start, error_code)
);

CREATE TABLE phone_performance (
    phone           TEXT PRIMARY KEY,
    total_messages  BIGINT NOT NULL DEFAULT 0,
    success_count   BIGINT NOT NULL DEFAULT 0,
    failure_count   BIGINT NOT NULL DEFAULT 0,
    read_count      BIGINT NOT NULL DEFAULT 0,
    last_message_at BIGINT
);

CREATE TABLE phone_errors (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    phone         TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    error_code    BIGINT,
    error_message TEXT,
    occurred_at   BIGINT NOT NULL
);
CREATE INDEX phone_errors_phone ON phone_errors (phone, id);

CREATE TABLE contacts (
    phone           TEXT PRIMARY KEY,
    profile_name    TEXT,
    wa_id           TEXT,
    last_inbound_at BIGINT,
    opted_out       BIGINT NOT NULL DEFAULT 0,
    opted_out_at    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
