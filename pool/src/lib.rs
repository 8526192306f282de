//! The pool: a Stratum v1 server that takes templates from a node, hands every miner its
//! own work, validates shares, submits blocks and (in PPLNS mode) pays the pool's address.
//!
//! The modules in data-flow order:
//!
//! ```text
//! node (RPC, zmq) --> templates (long poll, poll, refresh, failover) --> jobs (JobMaker)
//!   --> server (accept, limits) --> connection (socket <-> session) --> session (Stratum
//!   state machine, vardiff, share::validate) --> blocks (submitblock to every node)
//! connection --accepted shares, blocks--> store::writer (group commit, spool) --> PostgreSQL
//! store::leader --> store::tracker (confirmations, PPLNS credits via pplns::split),
//!   store::payments (sendmany), store::sampler (statistics)
//! ```
//!
//! `session`, `share`, `vardiff` and `jobs` are pure (no IO, no clock: `now` is an
//! argument) and tested without sockets; `run` wires the tasks together.
//! Coinbase assembly, merkle branches, targets and the Stratum wire format come from the
//! `protocol` crate.

pub mod api;
pub mod blocks;
pub mod config;
pub mod connection;
pub mod extranonce;
pub mod jobs;
pub mod latency;
pub mod live;
pub mod node;
pub mod pplns;
pub mod proxy_protocol;
pub mod run;
pub mod server;
pub mod session;
pub mod share;
pub mod stats;
pub mod store;
pub mod templates;
pub mod tls;
pub mod vardiff;
pub mod zmq;
