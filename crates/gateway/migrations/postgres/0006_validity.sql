-- Validity periods (issue 10): how long a message may wait to be sent once due, and the time it
-- expires (NULL for inbound messages). Messages stored before keep Twilio's default and no expiry.
ALTER TABLE messages ADD COLUMN validity_s BIGINT NOT NULL DEFAULT 36000;
ALTER TABLE messages ADD COLUMN expires_at BIGINT;
