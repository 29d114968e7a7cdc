-- One batched write path. The messages table is the queue of the SQL backends: sendable rows are
-- found through a partial index, and the jobs table written and deleted per message is gone.
DROP TABLE queue_jobs;
DROP INDEX messages_due;
CREATE INDEX messages_sendable ON messages (priority, next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX messages_sendable_due ON messages (next_attempt_at) WHERE status IN ('pending', 'retrying');

-- The statuses Twilio has sent a callback for, one bit each (MessageStatus::bit): a repeated
-- callback is recognised from the message row itself, under its row lock, and logged once.
ALTER TABLE messages ADD COLUMN callbacks_seen BIGINT NOT NULL DEFAULT 0;
UPDATE messages SET callbacks_seen = seen.bits FROM (
    SELECT message_id, SUM(DISTINCT CASE new_status
        WHEN 'pending' THEN 1 WHEN 'retrying' THEN 2 WHEN 'queued' THEN 4 WHEN 'sending' THEN 8
        WHEN 'sent' THEN 16 WHEN 'delivered' THEN 32 WHEN 'read' THEN 64 WHEN 'undelivered' THEN 128
        WHEN 'failed' THEN 256 ELSE 0 END) AS bits
    FROM message_status_log WHERE source = 'callback' GROUP BY message_id
) AS seen WHERE messages.id = seen.message_id;

-- A callback for a SID not recorded yet is kept once per status.
DELETE FROM unmatched_callbacks WHERE id NOT IN (SELECT MIN(id) FROM unmatched_callbacks GROUP BY message_sid, status);
DROP INDEX unmatched_callbacks_sid;
CREATE UNIQUE INDEX unmatched_callbacks_once ON unmatched_callbacks (message_sid, status);
