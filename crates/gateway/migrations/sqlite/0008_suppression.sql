-- Suppressed recipients (issue 10): Twilio refused the number for good (63024, 21211, 21614);
-- later sends to it are refused unless forced, until the contact writes.
ALTER TABLE contacts ADD COLUMN suppressed_code BIGINT;
ALTER TABLE contacts ADD COLUMN suppressed_at BIGINT;
