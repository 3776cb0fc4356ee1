-- API keys: a short non-secret prefix to tell keys apart, an optional expiry, and when
-- each was last used (written at most about once a minute per key).
ALTER TABLE api_keys
    ADD COLUMN prefix       text,
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;

-- A reconnect link's raw token, sealed (AES-256-GCM, AAD = the link's row), so the API
-- hands out the same live link again instead of minting one per call.
ALTER TABLE links ADD COLUMN token_sealed bytea;

-- Bullhorn API-user sign-ins on our page, counted per end user and per username. Keys
-- are HMACs, so a username typed here is never stored readable. An attempt is written
-- before the password is tried and removed when it succeeds.
CREATE TABLE api_user_login_attempts (
    id       bigserial PRIMARY KEY,
    key_hash bytea NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX api_user_login_attempts_by_key ON api_user_login_attempts (key_hash, at);
CREATE INDEX api_user_login_attempts_at ON api_user_login_attempts (at);
