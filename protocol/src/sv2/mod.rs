//! Stratum V2's keys and transport, shared by the pool (responder) and the miner
//! (initiator). Behind the `sv2` feature: the cryptography, framing and messages are the
//! Stratum Reference Implementation's crates, and the transport is the one part of this
//! crate that moves bytes over a tokio stream (the Noise handshake is a fixed exchange of
//! two messages, and a frame's length is known only after its header is decrypted, so a
//! sans-IO split would only move the same loop into both callers).
//!
//! - [`keys`]: the authority key pair in the encoding SRI's tools use.
//! - [`transport`]: the Noise NX handshake (either side) and encrypted frames both ways,
//!   with a cap on a frame's size.

pub mod keys;
pub mod transport;
