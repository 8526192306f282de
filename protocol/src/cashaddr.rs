//! CashAddr, Bitcoin Cash's address format (spec: bitcoincash.org `spec/cashaddr.md`;
//! token-aware types from CHIP-2022-02): `prefix:payload`, base32, a 40-bit BCH-code
//! checksum over the prefix and the payload, so that an address pasted on the wrong
//! network fails its checksum rather than paying someone else's script.
//!
//! rust-bitcoin has no CashAddr, so this is our own encoder and decoder, tested with the
//! spec's and Bitcoin Cash Node's vectors.

use std::fmt;

/// The base32 alphabet: a 5-bit value is its index.
const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// Checksum symbols (8 x 5 bits = 40 bits).
const CHECKSUM_LEN: usize = 8;

/// What a CashAddr payload pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Pay to public key hash (type 0; type 2 is the same script, token-aware).
    PubkeyHash,
    /// Pay to script hash, 20 bytes (HASH160) or 32 (HASH256, "P2SH32"); type 1, or 3
    /// token-aware.
    ScriptHash,
}

/// A decoded address: its prefix (lower case), what it pays and the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashAddr {
    /// `bitcoincash`, `bchtest`, `bchreg`, ...
    pub prefix: String,
    /// The type field (0..=15) of the version byte.
    pub type_bits: u8,
    /// The hash (20 to 64 bytes, as the version byte's size field says).
    pub hash: Vec<u8>,
}

/// Why a text is not a CashAddr.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CashAddrError {
    /// Upper and lower case mixed.
    #[error("mixed upper and lower case")]
    MixedCase,
    /// A character outside the alphabet (`1`, `b`, `i`, `o` and anything not a letter or
    /// digit), or a misplaced `:`.
    #[error("character {0:?} cannot appear there")]
    BadCharacter(char),
    /// Digits are not allowed in the prefix.
    #[error("a digit in the prefix")]
    DigitInPrefix,
    /// The checksum does not match (a typo, or an address of another network).
    #[error("checksum mismatch (a typo, or an address for another network)")]
    Checksum,
    /// Too short to hold a version byte and a checksum.
    #[error("too short")]
    TooShort,
    /// Bits left over that are not zero padding.
    #[error("bad padding")]
    Padding,
    /// The version byte's reserved bit is set.
    #[error("reserved version bit set")]
    ReservedBit,
    /// A valid address with another network's prefix.
    #[error("an address for {found:?}, not {expected:?}")]
    WrongPrefix {
        /// The network's prefix.
        expected: String,
        /// The address's.
        found: String,
    },
    /// The hash is not as long as the version byte says.
    #[error("the hash is {found} bytes where its version byte says {expected}")]
    HashSize {
        /// From the version byte.
        expected: usize,
        /// In the payload.
        found: usize,
    },
}

/// The prefix's part of the checksum input: the low 5 bits of each character, then 0.
fn expand_prefix(prefix: &str) -> impl Iterator<Item = u8> + '_ {
    prefix.bytes().map(|c| c & 0x1f).chain(std::iter::once(0))
}

/// The spec's BCH code over GF(32): 0 for a valid prefix + payload + checksum.
fn polymod(values: impl Iterator<Item = u8>) -> u64 {
    const GENERATOR: [u64; 5] = [
        0x98_f2bc_8e61,
        0x79_b76d_99e2,
        0xf3_3e5f_b3c4,
        0xae_2eab_e2a8,
        0x1e_4f43_e470,
    ];
    let mut c: u64 = 1;
    for d in values {
        let top = (c >> 35) as u8;
        c = ((c & 0x07_ffff_ffff) << 5) ^ u64::from(d);
        for (bit, g) in GENERATOR.iter().enumerate() {
            if top >> bit & 1 == 1 {
                c ^= g;
            }
        }
    }
    c ^ 1
}

/// Regroups bits: 8 to 5 (with zero padding) or 5 to 8 (padding must be zero and short).
fn convert_bits(data: &[u8], from: u32, to: u32, pad: bool) -> Result<Vec<u8>, CashAddrError> {
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut out = Vec::with_capacity(data.len() * from as usize / to as usize + 1);
    let max = (1u32 << to) - 1;
    for &v in data {
        acc = (acc << from) | u32::from(v);
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & max) as u8);
        }
    }
    if pad {
        if bits > 0 {
            out.push(((acc << (to - bits)) & max) as u8);
        }
    } else if bits >= from || (acc << (to - bits)) & max != 0 {
        return Err(CashAddrError::Padding);
    }
    Ok(out)
}

/// The hash length a version byte's size field names.
fn hash_size(version: u8) -> usize {
    let size = 20 + 4 * usize::from(version & 0x03);
    if version & 0x04 != 0 { size * 2 } else { size }
}

/// Decodes `text`; without a `prefix:` part, the payload is checked against
/// `default_prefix` (the network's). The result names the prefix it was checked against.
pub fn decode(text: &str, default_prefix: &str) -> Result<CashAddr, CashAddrError> {
    let (prefix, values) = decode_values(text, default_prefix)?;
    let data = convert_bits(&values, 5, 8, false)?;
    let (&version, hash) = data.split_first().ok_or(CashAddrError::TooShort)?;
    if version & 0x80 != 0 {
        return Err(CashAddrError::ReservedBit);
    }
    let expected = hash_size(version);
    if hash.len() != expected {
        return Err(CashAddrError::HashSize {
            expected,
            found: hash.len(),
        });
    }
    Ok(CashAddr {
        prefix,
        type_bits: version >> 3,
        hash: hash.to_vec(),
    })
}

/// Decodes `text` for the network whose prefix is `prefix` (with or without the prefix
/// written out).
pub fn decode_for(text: &str, prefix: &str) -> Result<CashAddr, CashAddrError> {
    let addr = decode(text, prefix)?;
    if addr.prefix != prefix {
        return Err(CashAddrError::WrongPrefix {
            expected: prefix.to_string(),
            found: addr.prefix,
        });
    }
    Ok(addr)
}

/// The prefix (lower case) and the payload's 5-bit values without the checksum, once the
/// case rules, the alphabet and the checksum hold.
fn decode_values(text: &str, default_prefix: &str) -> Result<(String, Vec<u8>), CashAddrError> {
    let (mut lower, mut upper, mut digit) = (false, false, false);
    let mut separator = None;
    for (i, c) in text.char_indices() {
        match c {
            'a'..='z' => lower = true,
            'A'..='Z' => upper = true,
            '0'..='9' => digit = true,
            ':' if i > 0 && separator.is_none() => {
                if digit {
                    return Err(CashAddrError::DigitInPrefix);
                }
                separator = Some(i);
            }
            other => return Err(CashAddrError::BadCharacter(other)),
        }
    }
    if lower && upper {
        return Err(CashAddrError::MixedCase);
    }
    let (prefix, payload) = match separator {
        Some(i) => (text[..i].to_ascii_lowercase(), &text[i + 1..]),
        None => (default_prefix.to_ascii_lowercase(), text),
    };
    let mut values = payload
        .chars()
        .map(|c| {
            let lower = c.to_ascii_lowercase() as u8;
            CHARSET
                .iter()
                .position(|&x| x == lower)
                .map(|v| v as u8)
                .ok_or(CashAddrError::BadCharacter(c))
        })
        .collect::<Result<Vec<u8>, _>>()?;
    if values.len() < CHECKSUM_LEN {
        return Err(CashAddrError::TooShort);
    }
    if polymod(expand_prefix(&prefix).chain(values.iter().copied())) != 0 {
        return Err(CashAddrError::Checksum);
    }
    values.truncate(values.len() - CHECKSUM_LEN);
    Ok((prefix, values))
}

impl CashAddr {
    /// What it pays, when it is a type a payout can go to (token-aware types pay the
    /// same scripts).
    pub fn kind(&self) -> Option<Kind> {
        match self.type_bits {
            0 | 2 => Some(Kind::PubkeyHash),
            1 | 3 => Some(Kind::ScriptHash),
            _ => None,
        }
    }

    /// The output script that pays it, for the standard kinds and sizes: P2PKH (20-byte
    /// hash), P2SH (20 bytes, HASH160) and P2SH32 (32 bytes, HASH256).
    pub fn script_pubkey(&self) -> Option<Vec<u8>> {
        let h = &self.hash;
        let script = match (self.kind()?, h.len()) {
            (Kind::PubkeyHash, 20) => [&[0x76, 0xa9, 0x14][..], h, &[0x88, 0xac]].concat(),
            (Kind::ScriptHash, 20) => [&[0xa9, 0x14][..], h, &[0x87]].concat(),
            (Kind::ScriptHash, 32) => [&[0xaa, 0x20][..], h, &[0x87]].concat(),
            _ => return None,
        };
        Some(script)
    }
}

impl fmt::Display for CashAddr {
    /// The canonical text: lower case, with the prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size_bits = match self.hash.len() {
            20 => 0,
            24 => 1,
            28 => 2,
            32 => 3,
            40 => 4,
            48 => 5,
            56 => 6,
            64 => 7,
            _ => return Err(fmt::Error),
        };
        let mut data = vec![(self.type_bits << 3) | size_bits];
        data.extend_from_slice(&self.hash);
        let mut values = convert_bits(&data, 8, 5, true).map_err(|_| fmt::Error)?;
        let check = polymod(
            expand_prefix(&self.prefix)
                .chain(values.iter().copied())
                .chain([0; CHECKSUM_LEN]),
        );
        values.extend((0..CHECKSUM_LEN).map(|i| ((check >> (5 * (7 - i))) & 0x1f) as u8));
        f.write_str(&self.prefix)?;
        f.write_str(":")?;
        for v in values {
            f.write_str(
                std::str::from_utf8(&CHARSET[usize::from(v)..=usize::from(v)])
                    .map_err(|_| fmt::Error)?,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
