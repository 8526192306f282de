-- One view across pool processes (docs/operator.md, "Several processes, one view"): every
-- pool process on this database writes what it has live (connected workers, their
-- hashrates and sessions) every few seconds; the others read it and add it to their own.
-- A process that stopped cleanly deletes its row; one that died stops counting once its
-- row is older than database.live_timeout_secs (by the database's clock), and is deleted
-- after a day.
CREATE TABLE live_snapshots (
    process     text        PRIMARY KEY,   -- host/pid/start: unique per running process
    instance_id smallint    NOT NULL,      -- its stratum.instance_id
    started     timestamptz NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    workers     jsonb       NOT NULL       -- [WorkerLive], observe::live
);
