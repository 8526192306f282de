//! Stratum V2, the second front door: the Noise transport and binary frames of the
//! Stratum Reference Implementation's crates, over the same template feed, jobs, share
//! validation, vardiff, store and PPLNS as Stratum v1.
//!
//! - [`session`]: one connection's Mining Protocol state machine, sans-IO.
//! - [`connection`]: the handshake, then messages between the socket and the session.

//!
//! The authority keys and the Noise transport are `protocol::sv2`'s, shared with the miner.

pub mod connection;
pub mod session;
