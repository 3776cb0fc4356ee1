-- no-transaction
-- Substring search of end users (external id, email, name) by trigrams: patterns of
-- three characters or more find their rows through this index.
CREATE INDEX CONCURRENTLY end_users_search ON end_users
    USING gin (external_id gin_trgm_ops, email gin_trgm_ops, display_name gin_trgm_ops);
