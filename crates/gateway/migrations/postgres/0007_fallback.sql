-- The 24-hour window (issue 10): the template a free-form message is sent as when its contact's
-- customer service window is closed (NULL: none given).
ALTER TABLE messages ADD COLUMN fallback_content_sid TEXT;
ALTER TABLE messages ADD COLUMN fallback_content_variables TEXT;
