//! What the miner and the pool must agree on byte for byte.
//!
//! This crate is sans-IO: no sockets, no async runtime, no clock. Everything here is a pure
//! function of its inputs, so it is tested with real chain data and no network.
//!
//! Map of the modules, in the order data flows through them:
//!
//! - [`hash`]: sha256d, the 256-bit hash type (internal byte order, shown reversed), and the
//!   header midstate + 16-byte tail split that every hashing backend starts from.
//! - [`header`]: the 80-byte block header.
//! - [`target`]: 256-bit targets, compact nBits, pool difficulty, hash difficulty.
//! - [`merkle`]: merkle roots, the Stratum coinbase branch, and the witness root.
//! - [`address`]: payout addresses to scriptPubKeys (through rust-bitcoin).
//! - [`signed_message`]: wallets' "sign message" signatures checked against an address
//!   (miners' settings changes).
//! - [`template`]: getblocktemplate request and response types (BIP 22/23/145).
//! - [`longpoll`]: when a getblocktemplate long poll may be opened (one per node).
//! - [`coinbase`]: coinb1/coinb2 around the extranonces, BIP34 height, outputs and the
//!   witness commitment.
//! - [`block`]: the full block for `submitblock`.
//! - [`stratum`]: Stratum v1 messages, typed, and the newline-delimited JSON codec.
//! - `sv2` (feature `sv2`): Stratum V2's authority keys and Noise transport, with the
//!   Stratum Reference Implementation's crates; the one module that does IO (over a tokio
//!   stream it is given).
#![warn(missing_docs)]

pub mod address;
pub mod block;
pub mod cashaddr;
pub mod coinbase;
pub mod hash;
pub mod header;
mod hexfmt;
pub use hexfmt::HexError;
pub mod longpoll;
pub mod merkle;
pub mod signed_message;
pub mod stratum;
#[cfg(feature = "sv2")]
pub mod sv2;
pub mod target;
pub mod template;

pub use hash::{Hash256, HeaderTail, Midstate, sha256d};
pub use header::BlockHeader;
pub use target::{CompactTarget, Difficulty, Target};

/// An amount in satoshis (rust-bitcoin's): block rewards, credits, balances, payments.
pub use bitcoin::Amount;
