-- Settings a miner changed itself, with a message signed by its address's key
-- (docs/api.md, "Miner settings"). signed_at is the timestamp inside the last message
-- taken: a message is taken only if its timestamp is later, so none can be replayed.
CREATE TABLE miner_settings (
    address           text        PRIMARY KEY,
    payment_threshold bigint      NOT NULL CHECK (payment_threshold > 0),
    signed_at         bigint      NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
