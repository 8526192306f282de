-- Coinbase payouts (payouts.method = "coinbase"): what each block's coinbase paid every
-- address its job named. credit is the address's PPLNS credit from that block's reward,
-- paid what its output paid (credit plus an earlier carried balance, or 0 when carried).
-- An address's carried balance is the sum of credit - paid over blocks not orphaned: an
-- orphan's rows stop counting, so an orphan pays nobody by construction.
CREATE TABLE coinbase_payouts (
    block_hash   text             NOT NULL REFERENCES blocks (hash),
    address      text             NOT NULL,
    difficulty   double precision NOT NULL,
    credit       bigint           NOT NULL CHECK (credit >= 0),
    paid         bigint           NOT NULL CHECK (paid >= 0),
    output_index integer,
    PRIMARY KEY (block_hash, address)
);
CREATE INDEX coinbase_payouts_address ON coinbase_payouts (address);
-- The pool's own output of a coinbase-payout block (NULL for other blocks).
ALTER TABLE blocks ADD COLUMN coinbase_pool bigint CHECK (coinbase_pool >= 0);
