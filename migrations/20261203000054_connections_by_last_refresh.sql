-- no-transaction
-- The console's list sorted by last refresh (never refreshed sorts first); the
-- expression must stay the one in src/db/console.rs.
CREATE INDEX CONCURRENTLY connections_by_last_refresh ON connections
    ((COALESCE(last_refreshed_at, '0001-01-01 00:00:00+00'::timestamptz)), id);
