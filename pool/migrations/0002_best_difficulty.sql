-- Best share difficulties (the difficulty a share's hash reached) of each worker, each
-- address and the pool: all time, and this round. A round is the time since the pool's
-- last block: `round` counts only while `round_at` is after the newest `blocks.found_at`,
-- so a block starts a new round for every pool process sharing the database without
-- anyone resetting rows, and a replayed batch cannot bring back an old round's best.
CREATE TABLE best_difficulty (
    scope       text             NOT NULL CHECK (scope IN ('pool', 'address', 'worker')),
    address     text             NOT NULL, -- '' for the pool
    worker      text             NOT NULL, -- '' for the pool and an address as a whole
    all_time    double precision NOT NULL,
    all_time_at timestamptz      NOT NULL,
    round       double precision NOT NULL,
    round_at    timestamptz      NOT NULL,
    PRIMARY KEY (scope, address, worker)
);
