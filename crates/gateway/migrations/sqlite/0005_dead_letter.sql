-- Dead letters you can act on (issue 10).
--
-- A redriven message gets a fresh allowance of attempts while its attempt numbers go on (so the
-- earlier ones stay in its history): the attempts made before its last redrive.
ALTER TABLE messages ADD COLUMN attempt_base BIGINT NOT NULL DEFAULT 0;
