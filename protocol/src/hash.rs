//! sha256d, the 256-bit hash type, and the midstate/tail split of a block header.
//!
//! A block header is 80 bytes; SHA-256 eats 64-byte blocks. The first block (version,
//! previous hash, 28 bytes of the merkle root) does not change while a miner walks the nonce,
//! so its compression result, the *midstate*, is computed once per job. What is left is the
//! 16-byte *tail* (last 4 bytes of the merkle root, time, bits, nonce). Every hashing backend
//! starts from this pair; [`Midstate::sha256d`] is the reference they are all checked against.
//!
//! The compression function is `sha2`'s (which picks SHA-NI or SIMD itself); this module only
//! lays out the padding blocks.

use std::fmt;
use std::str::FromStr;

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use crate::hexfmt::{HexError, decode_array};

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
pub const SHA256_INIT: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A 256-bit hash in internal byte order (the order sha256d produces and headers store).
///
/// `Display`/`FromStr` use the reversed hex that block explorers and RPC show;
/// [`Hash256::as_bytes`] gives the internal order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// The all-zero hash (the coinbase's wtxid, the genesis block's previous hash).
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// The bytes in internal order.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses reversed (RPC/explorer) hex.
    pub fn from_display_hex(s: &str) -> Result<Self, HexError> {
        let mut bytes = decode_array::<32>(s)?;
        bytes.reverse();
        Ok(Hash256(bytes))
    }

    /// Parses hex that is already in internal byte order (Stratum merkle branches).
    pub fn from_internal_hex(s: &str) -> Result<Self, HexError> {
        Ok(Hash256(decode_array::<32>(s)?))
    }

    /// Hex of the internal byte order.
    pub fn to_internal_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The hash read as a little-endian 256-bit integer, as four u64 limbs, least
    /// significant first: the form targets are compared in.
    pub fn to_le_limbs(&self) -> [u64; 4] {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(self.0.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(word);
        }
        limbs
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rev = self.0;
        rev.reverse();
        f.write_str(&hex::encode(rev))
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

impl FromStr for Hash256 {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash256::from_display_hex(s)
    }
}

/// sha256(sha256(data)): txids, block hashes, merkle nodes.
pub fn sha256d(data: &[u8]) -> Hash256 {
    let first = Sha256::digest(data);
    Hash256(Sha256::digest(first).into())
}

/// The SHA-256 state after compressing a header's first 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Midstate(pub [u32; 8]);

/// The last 16 bytes of a header: merkle root bytes 28..32, time, bits, nonce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HeaderTail(pub [u8; 16]);

impl HeaderTail {
    /// The nonce, the last four bytes, little-endian as the header stores it.
    pub fn nonce(&self) -> u32 {
        u32::from_le_bytes([self.0[12], self.0[13], self.0[14], self.0[15]])
    }

    /// The same tail with another nonce.
    pub fn with_nonce(mut self, nonce: u32) -> Self {
        self.0[12..16].copy_from_slice(&nonce.to_le_bytes());
        self
    }
}

impl Midstate {
    /// Compresses the first 64 bytes of a header.
    pub fn from_prefix(prefix: &[u8; 64]) -> Midstate {
        let mut state = SHA256_INIT;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(prefix)]);
        Midstate(state)
    }

    /// sha256d of the header whose first 64 bytes gave this midstate and whose last 16
    /// bytes are `tail`. The reference every backend's candidates are re-checked with.
    pub fn sha256d(&self, tail: &HeaderTail) -> Hash256 {
        // Second block of the first hash: tail, 0x80, zeros, bit length 640.
        let mut block = [0u8; 64];
        block[..16].copy_from_slice(&tail.0);
        block[16] = 0x80;
        block[62..64].copy_from_slice(&640u16.to_be_bytes());
        let mut state = self.0;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&block)]);

        // Second hash: one block holding the 32-byte digest, 0x80, zeros, bit length 256.
        let mut block = [0u8; 64];
        for (chunk, word) in block.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        block[32] = 0x80;
        block[62..64].copy_from_slice(&256u16.to_be_bytes());
        let mut state = SHA256_INIT;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&block)]);

        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Hash256(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_of_empty_matches_known_value() {
        // sha256d("") is a widely published constant.
        assert_eq!(
            sha256d(b"").to_internal_hex(),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn display_is_reversed_internal_order() {
        let h = Hash256::from_display_hex(
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        )
        .unwrap();
        assert_eq!(h.0[31], 0x00);
        assert_eq!(h.0[0], 0x6f);
        assert_eq!(h.to_string().parse::<Hash256>().unwrap(), h);
    }

    #[test]
    fn bad_hex_is_an_error_not_a_panic() {
        assert!(Hash256::from_display_hex("zz").is_err());
        assert!(matches!(
            Hash256::from_display_hex("00"),
            Err(HexError::Length {
                expected: 32,
                got: 1
            })
        ));
    }
}
