-- Bullhorn API-user credentials, sealed like tokens, kept only when the user opts in to
-- automatic recovery of a dead grant.
ALTER TABLE connections ADD COLUMN provider_credentials bytea;
-- Consecutive failed refreshes, for capped backoff.
ALTER TABLE connections ADD COLUMN refresh_failures integer NOT NULL DEFAULT 0;

-- Provider-level problems (e.g. our client credentials rejected): shown to admins,
-- never turned into broken user connections.
CREATE TABLE provider_alarms (
    id       bigserial PRIMARY KEY,
    provider text NOT NULL,
    kind     text NOT NULL,
    detail   text,
    at       timestamptz NOT NULL
);
CREATE INDEX provider_alarms_recent ON provider_alarms (at DESC);
