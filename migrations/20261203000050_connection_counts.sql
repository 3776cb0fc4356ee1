-- Connections by provider and status, kept by triggers so the dashboard and the metrics
-- read a handful of rows instead of counting a million. Each backend adds to its own
-- slot (its process id modulo 16), so connect flows committing at once do not queue on
-- one hot row; a reader sums the slots (the view `connection_counts`). The update
-- trigger fires only when the status or the provider changes: refreshes do not touch it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE connection_count_slots (
    provider text NOT NULL,
    status   text NOT NULL,
    slot     smallint NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (provider, status, slot)
);

CREATE VIEW connection_counts AS
    SELECT provider, status, sum(count)::bigint AS count
    FROM connection_count_slots GROUP BY provider, status;

CREATE FUNCTION connection_counts_add(p text, s text, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO connection_count_slots AS t (provider, status, slot, count)
    VALUES (p, s, pg_backend_pid() % 16, delta)
    ON CONFLICT (provider, status, slot) DO UPDATE SET count = t.count + EXCLUDED.count
$$;

CREATE FUNCTION connection_counts_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so that concurrent statements lock the rows in one order.
    PERFORM connection_counts_add(provider, status, n)
    FROM (SELECT provider, status, count(*) AS n FROM new_rows
          GROUP BY provider, status ORDER BY provider, status) AS added;
    RETURN NULL;
END
$$;

CREATE FUNCTION connection_counts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM connection_counts_add(provider, status, -n)
    FROM (SELECT provider, status, count(*) AS n FROM old_rows
          GROUP BY provider, status ORDER BY provider, status) AS removed;
    RETURN NULL;
END
$$;

CREATE FUNCTION connection_counts_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.provider, OLD.status) < (NEW.provider, NEW.status) THEN
        PERFORM connection_counts_add(OLD.provider, OLD.status, -1);
        PERFORM connection_counts_add(NEW.provider, NEW.status, 1);
    ELSE
        PERFORM connection_counts_add(NEW.provider, NEW.status, 1);
        PERFORM connection_counts_add(OLD.provider, OLD.status, -1);
    END IF;
    RETURN NULL;
END
$$;

-- Creating a trigger locks out writes to the table until the migration commits, so the
-- first counts below miss nothing and count nothing twice.
CREATE TRIGGER connection_counts_inserted AFTER INSERT ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION connection_counts_inserted();
CREATE TRIGGER connection_counts_deleted AFTER DELETE ON connections
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION connection_counts_deleted();
CREATE TRIGGER connection_counts_moved AFTER UPDATE OF provider, status ON connections
    FOR EACH ROW
    WHEN (OLD.provider IS DISTINCT FROM NEW.provider OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION connection_counts_moved();

INSERT INTO connection_count_slots (provider, status, slot, count)
    SELECT provider, status, 0, count(*) FROM connections GROUP BY provider, status;
