-- Fewer writes per message (issue 9).
--
-- Status-log and attempt rows are written only by the batch writer, for messages it holds locked
-- in the same transaction, and messages are never deleted: the foreign keys re-checked that with
-- a trigger per inserted row, a sixth of the database's CPU per message.
ALTER TABLE message_status_log DROP CONSTRAINT message_status_log_message_id_fkey;
ALTER TABLE send_attempts DROP CONSTRAINT send_attempts_message_id_fkey;

-- Most messages have no idempotency key: index only those that have one.
DROP INDEX messages_idempotency_key;
CREATE UNIQUE INDEX messages_idempotency_key ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- A recipient's buckets are computed from its messages when asked; only the all-phones shards
-- are kept as rollups.
DELETE FROM delivery_metrics WHERE phone NOT LIKE '*%';
DELETE FROM delivery_time_histogram WHERE phone NOT LIKE '*%';
DELETE FROM delivery_errors WHERE phone NOT LIKE '*%';
