-- Fewer indexes on the outbox, whose rows are written on the hot path (issue 11's load run):
-- events are listed by id (their primary key, time-ordered) or by message; an endpoint's
-- deliveries are looked up to redrive its failed ones, and listed through the events.
DROP INDEX events_created;
DROP INDEX event_deliveries_endpoint;
CREATE INDEX event_deliveries_failed ON event_deliveries (endpoint_id) WHERE status = 'failed';
