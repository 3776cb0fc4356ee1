-- Webhooks: endpoints with sealed secrets, an outbox of events written in the same
-- transaction as the change each reports, and one delivery row per (event, endpoint).

CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    url text NOT NULL,
    -- NULL: every event type.
    events text[],
    -- `whsec_…` sealed with the key ring (AAD: this row and column).
    secret_sealed bytea NOT NULL,
    -- After a rotation the old secret keeps signing beside the new one until this time.
    previous_secret_sealed bytea,
    previous_secret_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_events (
    id uuid PRIMARY KEY,
    type text NOT NULL CHECK (type IN ('connection.created', 'connection.reconnected',
        'connection.needs_reconnect', 'connection.degraded', 'connection.recovered',
        'connection.disconnected')),
    connection_id uuid NOT NULL,
    -- The body's `data` without `reconnect_url`, which is rendered at delivery.
    data jsonb NOT NULL,
    occurred_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    lease_owner text,
    last_status_code integer,
    last_error text,
    last_attempt_at timestamptz,
    -- Retries stop `webhooks.retry_hours` after this (a redelivery starts a new window).
    window_start timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_recent ON webhook_deliveries (endpoint_id, id);
