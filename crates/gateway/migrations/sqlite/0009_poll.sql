-- The poller (issue 10): Twilio neither promises a status callback nor retries a failed one, so
-- messages whose news stopped coming are asked about. `poll_at` is when to ask next: NULL until
-- the first poll, 0 once given up (older than the poller's horizon).
ALTER TABLE messages ADD COLUMN poll_at BIGINT;
-- Not polled yet, by how long they have had no news (the statuses of `MessageStatus::UNSETTLED`).
CREATE INDEX messages_unpolled ON messages (last_status_at)
    WHERE poll_at IS NULL AND message_sid IS NOT NULL
      AND status IN ('scheduled', 'accepted', 'queued', 'sending', 'sent', 'partially_delivered', 'delivered');
-- Polled before, by when to ask again.
CREATE INDEX messages_poll_due ON messages (poll_at)
    WHERE poll_at > 0
      AND status IN ('scheduled', 'accepted', 'queued', 'sending', 'sent', 'partially_delivered', 'delivered');
