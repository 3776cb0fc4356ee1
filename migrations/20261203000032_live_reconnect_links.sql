-- no-transaction
-- The live reconnect link of a connection, looked up before minting another.
CREATE INDEX CONCURRENTLY IF NOT EXISTS links_live_reconnect ON links (connection_id, expires_at)
    WHERE kind = 'reconnect' AND used_at IS NULL;
