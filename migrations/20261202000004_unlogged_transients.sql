-- Browser sessions and authorizations in flight live minutes to hours. Losing them in a
-- crash only means a user opens the link or clicks Connect again, and a crash empties an
-- unlogged table, so a consumed state can never come back. Unlogged, their writes skip
-- the write-ahead log and their commits skip the flush to disk. Standbys do not have
-- them: after a failover, flows in progress start again.
ALTER TABLE pending_authorizations SET UNLOGGED;

-- The session store creates this table only if it is missing; create it unlogged first.
CREATE SCHEMA IF NOT EXISTS tower_sessions;
CREATE UNLOGGED TABLE IF NOT EXISTS tower_sessions.session (
    id          text PRIMARY KEY NOT NULL,
    data        bytea NOT NULL,
    expiry_date timestamptz NOT NULL
);
ALTER TABLE tower_sessions.session SET UNLOGGED;
