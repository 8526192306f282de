-- The pool's store: shares (partitioned by day), per-minute share totals, blocks and their
-- PPLNS credits, balances, payments, and sampled statistics. docs/payouts.md explains it.

-- Unix microseconds <-> timestamptz, exact in both directions (the pool passes times as
-- integers so that a share replayed from the spool lands on the very same key).
CREATE FUNCTION micros_to_ts(us bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'epoch'::timestamptz + us * interval '1 microsecond';

CREATE FUNCTION ts_to_micros(t timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (extract(epoch FROM t) * 1000000)::bigint;

-- Every accepted share. `uid` is unique per pool process run; (time, uid) makes a replay
-- from the spool file a no-op for shares that did reach the table.
CREATE TABLE shares (
    time               timestamptz      NOT NULL,
    uid                bigint           NOT NULL,
    address            text             NOT NULL,
    worker             text             NOT NULL,
    difficulty         double precision NOT NULL,
    share_difficulty   double precision NOT NULL,
    network_difficulty double precision NOT NULL,
    height             bigint           NOT NULL,
    instance           smallint         NOT NULL,
    PRIMARY KEY (time, uid)
) PARTITION BY RANGE (time);

-- Creates the day's partition if it does not exist; several pool processes may race here,
-- so they take turns.
CREATE FUNCTION ensure_share_partition(day date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := 'shares_' || to_char(day, 'YYYYMMDD');
BEGIN
    PERFORM pg_advisory_xact_lock(727201);
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF shares FOR VALUES FROM (%L) TO (%L)',
            name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END IF;
END $$;

-- Drops the daily partitions that end before `keep_days` ago; returns how many.
CREATE FUNCTION drop_old_share_partitions(keep_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
    cutoff date := (now() AT TIME ZONE 'UTC')::date - keep_days;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'shares'::regclass AND c.relname ~ '^shares_[0-9]{8}$'
    LOOP
        IF to_date(substr(part.relname, 8), 'YYYYMMDD') < cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

-- Share difficulty per minute, address and worker, kept up to date in the same statement
-- that inserts the shares: PPLNS windows and hashrate figures read these few rows rather
-- than millions of shares.
CREATE TABLE share_minutes (
    minute     timestamptz      NOT NULL,
    address    text             NOT NULL,
    worker     text             NOT NULL,
    difficulty double precision NOT NULL,
    shares     bigint           NOT NULL,
    PRIMARY KEY (minute, address, worker)
);

CREATE TYPE block_status AS ENUM ('pending', 'confirmed', 'orphaned');

CREATE TABLE blocks (
    hash               text PRIMARY KEY,
    height             bigint           NOT NULL,
    found_at           timestamptz      NOT NULL,
    finder             text             NOT NULL,
    reward             bigint           NOT NULL CHECK (reward >= 0),
    network_difficulty double precision NOT NULL,
    status             block_status     NOT NULL DEFAULT 'pending',
    confirmations      bigint           NOT NULL DEFAULT 0,
    -- Set when the PPLNS window is frozen:
    frozen_at          timestamptz,
    effort             double precision,
    window_difficulty  double precision,
    window_filled      double precision,
    pool_amount        bigint CHECK (pool_amount >= 0),
    -- Set when confirmed or orphaned:
    decided_at         timestamptz
);
CREATE INDEX blocks_by_status ON blocks (status) WHERE status = 'pending';
CREATE INDEX blocks_by_time ON blocks (found_at);

-- A frozen window: what each address gets if the block confirms. Balances change only
-- then (credited_at); an orphaned block keeps its rows for the record and credits no one.
CREATE TABLE credits (
    block_hash  text             NOT NULL REFERENCES blocks (hash),
    address     text             NOT NULL,
    difficulty  double precision NOT NULL,
    amount      bigint           NOT NULL CHECK (amount >= 0),
    credited_at timestamptz,
    PRIMARY KEY (block_hash, address)
);

CREATE TABLE balances (
    address    text PRIMARY KEY,
    amount     bigint      NOT NULL DEFAULT 0 CHECK (amount >= 0),
    paid       bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE payout_status AS ENUM ('intent', 'sent', 'failed');

-- One sendmany. Written (and the balances debited) before the wallet is asked to send;
-- the wallet transaction carries the comment, which is how a restart finds out whether
-- an intent was sent.
CREATE TABLE payouts (
    id         bigserial PRIMARY KEY,
    comment    text          NOT NULL UNIQUE,
    status     payout_status NOT NULL DEFAULT 'intent',
    txid       text,
    error      text,
    created_at timestamptz   NOT NULL DEFAULT now(),
    sent_at    timestamptz
);

CREATE TABLE payments (
    payout_id bigint NOT NULL REFERENCES payouts (id),
    address   text   NOT NULL,
    amount    bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (payout_id, address)
);
CREATE INDEX payments_by_address ON payments (address);

-- Sampled statistics for the dashboard.
CREATE TABLE pool_stats (
    time           timestamptz PRIMARY KEY,
    hashrate       double precision NOT NULL,
    shares_per_sec double precision NOT NULL,
    miners         integer          NOT NULL,
    workers        integer          NOT NULL
);

CREATE TABLE miner_stats (
    time           timestamptz      NOT NULL,
    address        text             NOT NULL,
    worker         text             NOT NULL,
    hashrate       double precision NOT NULL,
    shares_per_sec double precision NOT NULL,
    PRIMARY KEY (address, time, worker)
);
CREATE INDEX miner_stats_by_time ON miner_stats (time);
