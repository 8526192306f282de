//! Rebuilding the header a miner hashed from the job it was sent and the share it submits.

use crate::hash::{Hash256, sha256d};
use crate::header::BlockHeader;
use crate::hexfmt::{HexError, decode_array};
use crate::merkle;
use crate::stratum::method::Notify;

/// The notify `prevhash` form of a hash: internal order with each 4-byte word reversed.
pub fn prevhash_to_stratum(hash: &Hash256) -> String {
    hex::encode(swap_words(&hash.0))
}

/// Parses a notify `prevhash` back into the internal-order hash.
pub fn prevhash_from_stratum(s: &str) -> Result<Hash256, HexError> {
    Ok(Hash256(swap_words(&decode_array::<32>(s)?)))
}

fn swap_words(bytes: &[u8; 32]) -> [u8; 32] {
    let mut out = *bytes;
    for word in out.chunks_exact_mut(4) {
        word.reverse();
    }
    out
}

/// The coinbase transaction (without witness) a miner builds for a job.
pub fn coinbase_tx(notify: &Notify, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
    join_coinbase(&notify.coinb1, extranonce1, extranonce2, &notify.coinb2)
}

/// `coinb1 || extranonce1 || extranonce2 || coinb2`.
pub fn join_coinbase(
    coinb1: &[u8],
    extranonce1: &[u8],
    extranonce2: &[u8],
    coinb2: &[u8],
) -> Vec<u8> {
    let mut tx =
        Vec::with_capacity(coinb1.len() + extranonce1.len() + extranonce2.len() + coinb2.len());
    tx.extend(coinb1);
    tx.extend(extranonce1);
    tx.extend(extranonce2);
    tx.extend(coinb2);
    tx
}

/// The merkle root a share commits to: the coinbase from its halves and the two
/// extranonces, hashed, then up the job's branch. The pool's share check, the miner's
/// header for each extranonce2 and [`share_header`] all go through this one function.
pub fn merkle_root(
    coinb1: &[u8],
    extranonce1: &[u8],
    extranonce2: &[u8],
    coinb2: &[u8],
    branch: &[Hash256],
) -> Hash256 {
    let coinbase = join_coinbase(coinb1, extranonce1, extranonce2, coinb2);
    merkle::root_from_branch(&sha256d(&coinbase), branch)
}

/// The header a miner hashed: merkle root from the coinbase and the job's branch, previous
/// hash, bits from the job; version, time and nonce from the share.
pub fn share_header(
    notify: &Notify,
    extranonce1: &[u8],
    extranonce2: &[u8],
    version: u32,
    time: u32,
    nonce: u32,
) -> BlockHeader {
    BlockHeader {
        version,
        prev_hash: notify.prev_hash,
        merkle_root: merkle_root(
            &notify.coinb1,
            extranonce1,
            extranonce2,
            &notify.coinb2,
            &notify.merkle_branch,
        ),
        time,
        bits: notify.nbits,
        nonce,
    }
}
