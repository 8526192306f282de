//! Small hex helpers shared by the modules: fixed-size decoding with clear errors.

/// A hex string that could not be decoded into the expected bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The string holds a character that is not a hex digit, or has an odd length.
    #[error("not valid hex: {0}")]
    Invalid(String),
    /// The string decodes, but to the wrong number of bytes.
    #[error("expected {expected} bytes of hex, got {got}")]
    Length {
        /// How many bytes the field must hold.
        expected: usize,
        /// How many bytes the string held.
        got: usize,
    },
}

impl From<hex::FromHexError> for HexError {
    fn from(e: hex::FromHexError) -> Self {
        HexError::Invalid(e.to_string())
    }
}

/// Decodes exactly `N` bytes from hex.
pub fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let bytes = hex::decode(s)?;
    let got = bytes.len();
    bytes
        .try_into()
        .map_err(|_| HexError::Length { expected: N, got })
}

/// Decodes a big-endian u32 written as exactly 8 hex digits (Stratum's version, nbits,
/// ntime and nonce fields).
pub fn decode_u32_be(s: &str) -> Result<u32, HexError> {
    Ok(u32::from_be_bytes(decode_array::<4>(s)?))
}
