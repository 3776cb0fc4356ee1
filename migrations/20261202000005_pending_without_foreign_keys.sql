-- An authorization in flight is checked against its end user when the callback consumes
-- it and swept when it expires. Foreign keys would add, to every Connect click, a locking
-- read of the end user's row that is written to the log.
ALTER TABLE pending_authorizations
    DROP CONSTRAINT IF EXISTS pending_authorizations_end_user_id_fkey,
    DROP CONSTRAINT IF EXISTS pending_authorizations_connection_id_fkey;
