//! The pool: a Stratum v1 server that takes templates from a node, hands every miner its
//! own work, validates shares, submits blocks and records PPLNS payouts in PostgreSQL.
//!
//! Data flow (see docs/architecture.md):
//!
//! ```text
//! node --getblocktemplate--> templates --Job--> sessions --submit--> shares::validate
//!   --accepted--> share log --> PostgreSQL;  --block candidate--> submitblock --> node
//! ```
//!
//! Coinbase assembly, merkle branches, targets and the Stratum wire format come from the
//! `protocol` crate.
