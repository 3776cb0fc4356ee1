-- no-transaction
-- …or were used.
CREATE INDEX CONCURRENTLY IF NOT EXISTS links_used ON links (used_at) WHERE used_at IS NOT NULL;
