-- Event webhooks (issue 11): what the application hears about, written in the same transaction
-- as the change it reports (the outbox), then delivered by the dispatcher.

-- Each event of a message carries the message's next sequence number, so that the application
-- can order them (deliveries are concurrent and retried: their order is not promised).
ALTER TABLE messages ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
-- What an incoming message carried beyond text and media URLs (JSON: media types, a button or
-- list reply, a location, a click-to-WhatsApp referral).
ALTER TABLE messages ADD COLUMN details TEXT;

-- The application's endpoints. `origin`: `api` (managed over the API), `config` (from
-- EVENTS_URL / INBOUND_FORWARD_URL) or `internal` (the gateway's own handlers, run in process).
CREATE TABLE event_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT,
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until BIGINT,
    enabled BIGINT NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    failing_since BIGINT,
    origin TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per event: its Standard Webhooks payload as sent.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    message_id TEXT,
    seq BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_message ON events (message_id, seq);
CREATE INDEX events_created ON events (created_at);

-- One row per event and endpoint that wants it. `status`: pending, delivered or failed;
-- `next_attempt_at` is also the dispatcher's lease (pushed forward while an attempt is out).
CREATE TABLE event_deliveries (
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    delivered_at BIGINT,
    result TEXT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX event_deliveries_endpoint ON event_deliveries (endpoint_id, status);

-- Every delivery attempt: when, the answer's status code, how long it took, an excerpt of it.
CREATE TABLE event_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    response TEXT,
    error TEXT
);
CREATE INDEX event_attempts_delivery ON event_attempts (event_id, endpoint_id);
CREATE INDEX event_attempts_endpoint ON event_attempts (endpoint_id, attempted_at);
