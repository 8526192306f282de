//! The 80-byte block header: encode, decode, hash, and the midstate/tail split.

use crate::hash::{Hash256, HeaderTail, Midstate, sha256d};
use crate::target::CompactTarget;

/// Length of a serialized header.
pub const HEADER_LEN: usize = 80;

/// A block header. Integers are host values; [`BlockHeader::encode`] writes them
/// little-endian as consensus requires.
///
/// `version` is kept as `u32` rather than consensus' signed `i32` because miners treat it as
/// a bit field (BIP 9 signalling, BIP 310 version rolling); the bytes are identical.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockHeader {
    /// Block version (bit field).
    pub version: u32,
    /// Hash of the previous block, internal order.
    pub prev_hash: Hash256,
    /// Merkle root of the block's transactions, internal order.
    pub merkle_root: Hash256,
    /// Block time, seconds since the Unix epoch.
    pub time: u32,
    /// The network target in compact form.
    pub bits: CompactTarget,
    /// The nonce.
    pub nonce: u32,
}

/// A header that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The input was not exactly 80 bytes.
    #[error("a block header is 80 bytes, got {0}")]
    Length(usize),
}

impl BlockHeader {
    /// Serializes to the 80 consensus bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_hash.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.0.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses the 80 consensus bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let b: &[u8; HEADER_LEN] = bytes
            .try_into()
            .map_err(|_| HeaderError::Length(bytes.len()))?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let hash_at = |i: usize| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&b[i..i + 32]);
            Hash256(h)
        };
        Ok(BlockHeader {
            version: u32_at(0),
            prev_hash: hash_at(4),
            merkle_root: hash_at(36),
            time: u32_at(68),
            bits: CompactTarget(u32_at(72)),
            nonce: u32_at(76),
        })
    }

    /// The block hash (sha256d of the 80 bytes), internal order.
    pub fn hash(&self) -> Hash256 {
        sha256d(&self.encode())
    }

    /// The SHA-256 state after the first 64 bytes; constant while only the tail changes.
    pub fn midstate(&self) -> Midstate {
        let bytes = self.encode();
        let mut prefix = [0u8; 64];
        prefix.copy_from_slice(&bytes[..64]);
        Midstate::from_prefix(&prefix)
    }

    /// The last 16 bytes: merkle root bytes 28..32, time, bits, nonce.
    pub fn tail(&self) -> HeaderTail {
        let bytes = self.encode();
        let mut tail = [0u8; 16];
        tail.copy_from_slice(&bytes[64..]);
        HeaderTail(tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS_HEADER: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
    const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

    #[test]
    fn genesis_header_decodes_hashes_and_reencodes() {
        let bytes = hex::decode(GENESIS_HEADER).unwrap();
        let h = BlockHeader::decode(&bytes).unwrap();
        assert_eq!(h.version, 1);
        assert_eq!(h.prev_hash, Hash256::ZERO);
        assert_eq!(
            h.merkle_root.to_string(),
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
        );
        assert_eq!(h.time, 1231006505);
        assert_eq!(h.bits, CompactTarget(0x1d00ffff));
        assert_eq!(h.nonce, 2083236893);
        assert_eq!(h.encode().to_vec(), bytes);
        assert_eq!(h.hash().to_string(), GENESIS_HASH);
        assert_eq!(h.midstate().sha256d(&h.tail()), h.hash());
    }

    #[test]
    fn block_125552_from_fields() {
        // The worked example of the Bitcoin wiki's "Block hashing algorithm" page.
        let h = BlockHeader {
            version: 1,
            prev_hash: "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81"
                .parse()
                .unwrap(),
            merkle_root: "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3"
                .parse()
                .unwrap(),
            time: 1305998791,
            bits: CompactTarget(440711666),
            nonce: 2504433986,
        };
        let hash = "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d";
        assert_eq!(h.hash().to_string(), hash);
        assert_eq!(h.midstate().sha256d(&h.tail()).to_string(), hash);
        assert_eq!(BlockHeader::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert_eq!(
            BlockHeader::decode(&[0u8; 79]),
            Err(HeaderError::Length(79))
        );
    }
}
