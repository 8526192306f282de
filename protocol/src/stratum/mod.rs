//! Stratum v1: typed messages, the newline-delimited JSON codec, and the byte-order rules
//! that turn a `mining.notify` plus a `mining.submit` back into a block header.
//!
//! Byte orders follow what real clients do (cpuminer, cgminer/bfgminer, ASIC firmware):
//! the notify `prevhash` is the internal-order hash with each 4-byte word reversed; merkle
//! branch entries are internal order; version, nbits, ntime and nonce are big-endian hex of
//! the integer; extranonces and coinbase halves are raw bytes in hex.

pub mod codec;
pub mod message;
pub mod method;
pub mod results;
pub mod work;

pub use codec::{CodecError, FrameError, StratumCodec};
pub use message::{Id, Message, MessageError, Response, StratumError};
pub use method::{
    Authorize, Configure, Method, Notify, Reconnect, SetExtranonce, Submit, Subscribe,
};
pub use results::{ConfigureResult, SubscribeResult};
pub use work::{merkle_root, prevhash_from_stratum, prevhash_to_stratum, share_header};
