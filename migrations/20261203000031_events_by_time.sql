-- no-transaction
-- Housekeeping deletes events past their retention by time.
CREATE INDEX CONCURRENTLY IF NOT EXISTS connection_events_by_at ON connection_events (at);
