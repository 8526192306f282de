//! Full block serialization for `submitblock`, and block assembly from a template.

use crate::coinbase::{Coinbase, CoinbaseError};
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::merkle;
use crate::template::CheckedTemplate;

/// Appends Bitcoin's CompactSize encoding of `n`.
pub fn push_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend((n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend((n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend(n.to_le_bytes());
        }
    }
}

/// Serializes a block: header, transaction count, coinbase (as the block carries it), then
/// the other transactions as given.
pub fn serialize<T: AsRef<[u8]>>(
    header: &BlockHeader,
    coinbase: &[u8],
    transactions: &[T],
) -> Vec<u8> {
    let size =
        80 + 9 + coinbase.len() + transactions.iter().map(|t| t.as_ref().len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend(header.encode());
    push_compact_size(&mut out, transactions.len() as u64 + 1);
    out.extend(coinbase);
    for tx in transactions {
        out.extend(tx.as_ref());
    }
    out
}

/// The fields a miner chooses for one solution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Solution<'a> {
    /// Extranonce1 of the session.
    pub extranonce1: &'a [u8],
    /// Extranonce2 the miner chose.
    pub extranonce2: &'a [u8],
    /// Header version (with any rolled bits applied).
    pub version: u32,
    /// Header time.
    pub time: u32,
    /// Header nonce.
    pub nonce: u32,
}

/// A block built from a template: its header and its `submitblock` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssembledBlock {
    /// The header.
    pub header: BlockHeader,
    /// The serialized block.
    pub bytes: Vec<u8>,
}

impl AssembledBlock {
    /// The block hash.
    pub fn hash(&self) -> Hash256 {
        self.header.hash()
    }

    /// Hex of the block, as `submitblock` takes it.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }
}

/// Builds the header and full block for a solution on `template` with `coinbase`.
pub fn assemble(
    template: &CheckedTemplate,
    coinbase: &Coinbase,
    solution: &Solution<'_>,
) -> Result<AssembledBlock, CoinbaseError> {
    let coinbase_txid = coinbase.txid(solution.extranonce1, solution.extranonce2)?;
    let mut txids = Vec::with_capacity(template.transactions.len() + 1);
    txids.push(coinbase_txid);
    txids.extend(template.transactions.iter().map(|t| t.txid));
    let header = BlockHeader {
        version: solution.version,
        prev_hash: template.prev_hash,
        merkle_root: merkle::root(&txids),
        time: solution.time,
        bits: template.bits,
        nonce: solution.nonce,
    };
    let coinbase_tx = coinbase.block_tx(solution.extranonce1, solution.extranonce2)?;
    let txs: Vec<&[u8]> = template
        .transactions
        .iter()
        .map(|t| t.data.as_slice())
        .collect();
    Ok(AssembledBlock {
        header,
        bytes: serialize(&header, &coinbase_tx, &txs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_boundaries() {
        let enc = |n| {
            let mut v = Vec::new();
            push_compact_size(&mut v, n);
            hex::encode(v)
        };
        assert_eq!(enc(0), "00");
        assert_eq!(enc(0xfc), "fc");
        assert_eq!(enc(0xfd), "fdfd00");
        assert_eq!(enc(0xffff), "fdffff");
        assert_eq!(enc(0x10000), "fe00000100");
        assert_eq!(enc(0xffff_ffff), "feffffffff");
        assert_eq!(enc(0x1_0000_0000), "ff0000000001000000");
        for n in [
            0u64,
            1,
            0xfc,
            0xfd,
            0xffff,
            0x10000,
            0xffff_ffff,
            0x1_0000_0000,
        ] {
            let theirs = bitcoin::consensus::serialize(&bitcoin::VarInt(n));
            assert_eq!(enc(n), hex::encode(theirs));
        }
    }
}
