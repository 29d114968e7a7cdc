-- The idempotency key a message was sent with (scoped by token subject): the database's own
-- guard against a second message for one key, even if the idempotency records in Redis are lost.
ALTER TABLE messages ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX messages_idempotency_key ON messages (idempotency_key);
