-- Acting on payouts through the admin API (docs/operator.md, "Payouts by hand").
--
-- A payout in flight (an intent whose outcome is unknown) that the wallet never saw can
-- be cancelled: its amounts go back to the balances. A failed payout (its amounts went
-- back to the balances when the wallet refused it) can be sent again as a new payout;
-- retried_as names that new payout, so one failure is retried at most once.
ALTER TYPE payout_status ADD VALUE IF NOT EXISTS 'cancelled';
ALTER TABLE payouts ADD COLUMN retried_as bigint REFERENCES payouts (id),
                    ADD COLUMN cancelled_at timestamptz;

-- What the admin API asked the leader to do (only the leader pays). Any pool process
-- may take a request; the leader picks it within a second, does it, and writes the
-- outcome (an HTTP status and body), which the asking process reads back.
CREATE TABLE admin_requests (
    id           bigserial   PRIMARY KEY,
    action       text        NOT NULL CHECK (action IN ('round', 'retry', 'cancel')),
    payout_id    bigint,
    requested_at timestamptz NOT NULL DEFAULT now(),
    picked_at    timestamptz,
    done_at      timestamptz,
    status       integer,
    outcome      text   -- JSON, as written (jsonb would reorder its keys)
);
CREATE INDEX admin_requests_open ON admin_requests (id) WHERE picked_at IS NULL;
