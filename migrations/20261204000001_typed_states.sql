-- Event kinds and actors are closed sets (src/model.rs); the database now refuses any
-- other spelling, as it already does for connection statuses and link kinds. The checks
-- are added unvalidated (no scan under this migration's lock) and validated in the next
-- migration, which lets writes go on meanwhile.
ALTER TABLE connection_events
    ADD CONSTRAINT connection_events_kind CHECK (kind IN ('connected', 'reconnected',
        'account_changed', 'refreshed', 'refresh_failed', 'needs_reconnect', 'recovered',
        'revoked', 'revoke_failed', 'refresh_requested', 'reconnect_link_created')) NOT VALID,
    ADD CONSTRAINT connection_events_actor CHECK (actor IN ('keyhaven', 'end_user', 'api')
        OR actor LIKE 'admin:_%') NOT VALID;

-- Why a connection failed, as a code: the end user's explanation and the webhooks'
-- `reason` follow it instead of the wording of `last_error`. Set and cleared with
-- `last_error`.
ALTER TABLE connections ADD COLUMN failure_code text;
ALTER TABLE connections ADD CONSTRAINT connections_failure_code CHECK (failure_code IN (
    'invalid_grant', 'invalid_client', 'throttled', 'provider_unavailable', 'timeout',
    'unreachable', 'malformed_response', 'rejected', 'backing_off', 'credentials_unreadable',
    'no_refresh_token', 'grant_dead', 'provider_error')) NOT VALID;

-- Connections failing now get the code their stored error text stood for.
UPDATE connections SET failure_code = CASE
        WHEN strpos(last_error, 'invalid_grant') > 0 THEN 'invalid_grant'
        WHEN strpos(last_error, 'invalid_client') > 0 THEN 'invalid_client'
        WHEN strpos(last_error, 'throttled') > 0 THEN 'throttled'
        WHEN strpos(last_error, 'provider_unavailable') > 0 THEN 'provider_unavailable'
        WHEN strpos(last_error, 'timeout') > 0 THEN 'timeout'
        WHEN strpos(last_error, 'unreachable') > 0 THEN 'unreachable'
        WHEN strpos(last_error, 'malformed_response') > 0 THEN 'malformed_response'
        WHEN strpos(last_error, 'rejected') > 0 THEN 'rejected'
        WHEN strpos(last_error, 'backing_off') > 0 THEN 'backing_off'
        -- Zoho's word for a dead grant.
        WHEN strpos(last_error, 'invalid_code') > 0 THEN 'invalid_grant'
        WHEN status = 'needs_reconnect' AND strpos(last_error, 'decrypt') > 0
            THEN 'credentials_unreadable'
        WHEN status = 'needs_reconnect' AND strpos(last_error, 'no refresh token') > 0
            THEN 'no_refresh_token'
        WHEN status = 'needs_reconnect' THEN 'grant_dead'
        ELSE 'provider_error'
    END
WHERE status IN ('needs_reconnect', 'degraded') AND last_error IS NOT NULL;
