-- no-transaction
-- Substring search of upstream accounts (id and label) by trigrams.
CREATE INDEX CONCURRENTLY connections_search ON connections
    USING gin (account_id gin_trgm_ops, account_label gin_trgm_ops);
