//! The pool: a Stratum server that takes templates from a node, hands every miner its own
//! work, validates shares, submits blocks and (in PPLNS mode) pays its miners.
//!
//! The folders follow a share from the node to PostgreSQL:
//!
//! ```text
//! chain/     node RPC, ZMQ --> feed (templates) --> jobs             --> blocks (submitblock)
//!                                                  |                    ^
//! stratum/   listener, admission --> connection <-> session (v1)     | block candidates
//!            v2/: Noise transport --> connection <-> session (V2)     |
//!                                                  |                    |
//! shares/    validation, vardiff, extranonce1 leases, the share record -+
//!                                                  | accepted shares
//! store/     rows, writer (group commit, spool) --> PostgreSQL, window, books, reads
//! accounting/ leader --> tracker (confirmations, PPLNS credits), payments (node wallet)
//! observe/   counters, live figures, latencies --> HTTP API, /metrics, dashboard
//! ```
//!
//! Imports run down, never back up, and `tests/layout.rs` checks it. The layers, lowest
//! first: [`config`], [`clock`] (the wall clock and randomness, which the pure parts never
//! read), [`net`] (socket helpers) and [`memory`] (freed memory back to the system); the counters of `observe`; the node RPC and the
//! jobs of `chain`; `shares` and the pure PPLNS split; `store`; the feed and block tasks
//! of `chain`; `stratum`; `accounting`; the HTTP API of `observe`; [`run`], which wires
//! the tasks (`main.rs` reads flags and signals).
//!
//! The sessions, share validation, vardiff, jobs and the PPLNS split are pure (`now` is an
//! argument) and tested without sockets. Coinbase assembly, merkle branches, targets and
//! the Stratum wire format come from the `protocol` crate; node RPC from `noderpc`.

pub mod accounting;
pub mod chain;
pub mod clock;
pub mod config;
pub mod memory;
pub mod net;
pub mod observe;
pub mod run;
pub mod shares;
pub mod store;
pub mod stratum;
