//! Stratum V2, the second front door: the Noise transport and binary frames of the
//! Stratum Reference Implementation's crates, over the same template feed, jobs, share
//! validation, vardiff, store and PPLNS as Stratum v1.
//!
//! - [`keys`]: the authority key pair that certifies the endpoint (SRI's encoding).
//! - [`transport`]: the Noise NX handshake as responder and encrypted frames both ways.
//! - [`session`]: one connection's Mining Protocol state machine, sans-IO.
//! - [`connection`]: the handshake, then messages between the socket and the session.

pub mod connection;
pub mod keys;
pub mod session;
pub mod transport;
