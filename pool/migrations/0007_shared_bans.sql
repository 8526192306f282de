-- Bans shared between pool processes on this database (limits.share_bans): a process
-- that bans an address writes it here, the others apply it; a ban lifted through the admin
-- API is set to end now, and every process lifts it. updated_by is the process
-- (live_snapshots.process) that wrote the row last. Rows ended a day ago are deleted.
CREATE TABLE shared_bans (
    ip         text        PRIMARY KEY,
    until      timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by text        NOT NULL
);
CREATE INDEX shared_bans_updated ON shared_bans (updated_at);
