-- People who may use the admin console. Emails are stored lower-cased; passwords as
-- argon2id PHC strings only.
CREATE TABLE admins (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

-- Failed admin sign-ins, counted per email and per client within a window. Kept in
-- Postgres so the limit holds across instances; both keys are SHA-256 hashes, so a
-- password typed into the email field is never stored readable.
CREATE TABLE admin_login_failures (
    id          bigserial PRIMARY KEY,
    email_hash  bytea NOT NULL,
    client_hash bytea NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX admin_login_failures_by_email ON admin_login_failures (email_hash, at);
CREATE INDEX admin_login_failures_by_client ON admin_login_failures (client_hash, at);
CREATE INDEX admin_login_failures_at ON admin_login_failures (at);

-- The admin console's list is searched and sorted by these.
CREATE INDEX connections_by_updated ON connections (updated_at, id);
CREATE INDEX connections_by_created ON connections (created_at, id);
CREATE INDEX connection_events_recent_failures ON connection_events (at DESC)
    WHERE kind IN ('refresh_failed', 'needs_reconnect', 'revoke_failed');
