-- End users belong to the host product; Keyhaven only mirrors what it needs to show.
CREATE TABLE end_users (
    id           uuid PRIMARY KEY,
    external_id  text NOT NULL UNIQUE,
    email        text,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE connections (
    id                 uuid PRIMARY KEY,
    end_user_id        uuid NOT NULL REFERENCES end_users(id) ON DELETE CASCADE,
    provider           text NOT NULL,
    status             text NOT NULL CHECK (status IN ('active', 'degraded', 'needs_reconnect', 'revoked')),
    account_id         text,
    account_label      text,
    scopes             text,
    metadata           jsonb NOT NULL DEFAULT '{}',
    -- Sealed (AES-256-GCM, key id inside, AAD = connection id + column).
    access_token       bytea,
    refresh_token      bytea,
    provider_session   bytea,
    access_expires_at  timestamptz,
    refresh_expires_at timestamptz,
    next_refresh_at    timestamptz,
    lease_until        timestamptz,
    lease_owner        text,
    version            bigint NOT NULL DEFAULT 1,
    last_error         text,
    last_refreshed_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connections_one_per_provider UNIQUE (end_user_id, provider)
);
CREATE INDEX connections_due ON connections (next_refresh_at) WHERE status IN ('active', 'degraded');

CREATE TABLE connection_events (
    id            bigserial PRIMARY KEY,
    connection_id uuid NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    kind          text NOT NULL,
    detail        text,
    actor         text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connection_events_by_connection ON connection_events (connection_id, at DESC);

-- Our own bearer tokens are stored as SHA-256 hashes only.
CREATE TABLE links (
    token_hash    bytea PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('connect', 'reconnect')),
    end_user_id   uuid NOT NULL REFERENCES end_users(id) ON DELETE CASCADE,
    connection_id uuid REFERENCES connections(id) ON DELETE CASCADE,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per authorization in flight; deleted when its callback arrives.
CREATE TABLE pending_authorizations (
    state_hash     bytea PRIMARY KEY,
    session_hash   bytea NOT NULL,
    provider       text NOT NULL,
    end_user_id    uuid NOT NULL REFERENCES end_users(id) ON DELETE CASCADE,
    connection_id  uuid REFERENCES connections(id) ON DELETE CASCADE,
    pkce_verifier  bytea,
    context        jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX pending_authorizations_expiry ON pending_authorizations (expires_at);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
