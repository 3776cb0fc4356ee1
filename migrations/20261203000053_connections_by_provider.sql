-- no-transaction
-- The console's list sorted by provider (keyset: provider, id).
CREATE INDEX CONCURRENTLY connections_by_provider ON connections (provider, id);
