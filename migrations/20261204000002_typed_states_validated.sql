-- Validating takes a lock that lets reads and writes go on while existing rows are checked.
ALTER TABLE connection_events VALIDATE CONSTRAINT connection_events_kind;
ALTER TABLE connection_events VALIDATE CONSTRAINT connection_events_actor;
ALTER TABLE connections VALIDATE CONSTRAINT connections_failure_code;
