-- One row per (provider, kind): a provider that keeps failing the same way counts up
-- instead of adding a row per attempt. The invalid_client row also holds that provider's
-- backoff: until `backoff_until` (database time) no call is made with the client
-- credentials whose fingerprint is stored; corrected credentials end it at once.
CREATE TABLE provider_alarms_by_kind (
    provider            text NOT NULL,
    kind                text NOT NULL,
    detail              text,
    count               bigint NOT NULL DEFAULT 1,
    first_seen          timestamptz NOT NULL DEFAULT now(),
    last_seen           timestamptz NOT NULL DEFAULT now(),
    backoff_until       timestamptz,
    client_fingerprint  bytea,
    PRIMARY KEY (provider, kind)
);
INSERT INTO provider_alarms_by_kind (provider, kind, detail, count, first_seen, last_seen)
SELECT provider, kind, (array_agg(detail ORDER BY at DESC, id DESC))[1], count(*), min(at), max(at)
FROM provider_alarms GROUP BY provider, kind;
DROP TABLE provider_alarms;
ALTER TABLE provider_alarms_by_kind RENAME TO provider_alarms;
ALTER INDEX provider_alarms_by_kind_pkey RENAME TO provider_alarms_pkey;
CREATE INDEX provider_alarms_recent ON provider_alarms (last_seen DESC);
