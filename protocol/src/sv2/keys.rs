//! The authority key that certifies the pool's Stratum V2 endpoint, in the encoding the
//! Stratum Reference Implementation's tools use: a public key is base58check of a 2-byte
//! little-endian version (1) and the 32-byte x-only key; a secret key is base58check of its
//! 32 bytes. Miners are given the public key; the pool signs each connection's certificate
//! with the secret one.

use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};

/// The version prefix of an encoded authority public key.
const PUBLIC_KEY_VERSION: u16 = 1;

/// An authority key pair (the x-only public key and its secret).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorityKeys {
    /// The x-only public key.
    pub public: [u8; 32],
    /// The secret key.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for AuthorityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("AuthorityKeys")
            .field("public", &encode_public(&self.public))
            .finish_non_exhaustive()
    }
}

/// A key that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base58check.
    #[error("not a base58check key: {0}")]
    Encoding(String),
    /// The wrong length or version for an authority public key.
    #[error("an authority public key is 34 bytes with version 1 (got {len} bytes)")]
    PublicKey {
        /// Bytes decoded.
        len: usize,
    },
    /// Not 32 bytes, or not a valid secp256k1 secret.
    #[error("an authority secret key is 32 bytes of a valid secp256k1 secret")]
    SecretKey,
    /// The configured public key is not the secret's.
    #[error(
        "authority_public_key {given} does not belong to the secret key (its key is {derived})"
    )]
    Mismatch {
        /// The configured public key.
        given: String,
        /// The secret's.
        derived: String,
    },
}

/// The text form of an authority public key.
pub fn encode_public(key: &[u8; 32]) -> String {
    let mut bytes = PUBLIC_KEY_VERSION.to_le_bytes().to_vec();
    bytes.extend_from_slice(key);
    bs58::encode(bytes).with_check().into_string()
}

/// The text form of an authority secret key.
pub fn encode_secret(key: &[u8; 32]) -> String {
    bs58::encode(key).with_check().into_string()
}

/// Parses an authority public key.
pub fn parse_public(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = bs58::decode(text.trim())
        .with_check(None)
        .into_vec()
        .map_err(|e| KeyError::Encoding(e.to_string()))?;
    if bytes.len() != 34 || u16::from_le_bytes([bytes[0], bytes[1]]) != PUBLIC_KEY_VERSION {
        return Err(KeyError::PublicKey { len: bytes.len() });
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[2..]);
    Ok(key)
}

impl AuthorityKeys {
    /// The pair of an encoded secret key.
    pub fn from_secret_text(text: &str) -> Result<AuthorityKeys, KeyError> {
        let bytes = bs58::decode(text.trim())
            .with_check(None)
            .into_vec()
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        let secret: [u8; 32] = bytes.try_into().map_err(|_| KeyError::SecretKey)?;
        AuthorityKeys::from_secret(secret)
    }

    /// The pair of a secret key.
    pub fn from_secret(secret: [u8; 32]) -> Result<AuthorityKeys, KeyError> {
        let secp = Secp256k1::signing_only();
        let sk = SecretKey::from_slice(&secret).map_err(|_| KeyError::SecretKey)?;
        let (public, _) = Keypair::from_secret_key(&secp, &sk).x_only_public_key();
        Ok(AuthorityKeys {
            public: public.serialize(),
            secret,
        })
    }

    /// A new random pair (`random` gives 32 bytes from the OS each call).
    pub fn generate(mut random: impl FnMut() -> [u8; 32]) -> AuthorityKeys {
        loop {
            // All but a 2^-128 fraction of 32-byte strings are valid secrets.
            if let Ok(keys) = AuthorityKeys::from_secret(random()) {
                return keys;
            }
        }
    }

    /// Checks a configured public key against the secret's.
    pub fn check_public(&self, text: &str) -> Result<(), KeyError> {
        let given = parse_public(text)?;
        if given == self.public {
            Ok(())
        } else {
            Err(KeyError::Mismatch {
                given: text.trim().to_string(),
                derived: encode_public(&self.public),
            })
        }
    }

    /// The public key's text.
    pub fn public_text(&self) -> String {
        encode_public(&self.public)
    }

    /// The secret key's text.
    pub fn secret_text(&self) -> String {
        encode_secret(&self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test pair in the Stratum Reference Implementation's example configurations.
    const SRI_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
    const SRI_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";

    #[test]
    fn the_reference_implementations_test_pair_round_trips() {
        let keys = AuthorityKeys::from_secret_text(SRI_SECRET).unwrap();
        assert_eq!(keys.public_text(), SRI_PUBLIC);
        assert_eq!(keys.secret_text(), SRI_SECRET);
        assert_eq!(parse_public(SRI_PUBLIC).unwrap(), keys.public);
        keys.check_public(SRI_PUBLIC).unwrap();
        assert!(format!("{keys:?}").contains(SRI_PUBLIC));
        assert!(
            !format!("{keys:?}").contains(SRI_SECRET),
            "the secret never prints"
        );
    }

    #[test]
    fn bad_keys_say_why() {
        assert!(matches!(
            parse_public("not base58 0OIl"),
            Err(KeyError::Encoding(_))
        ));
        // A secret key's text is not a public key (no version, 32 bytes).
        assert_eq!(
            parse_public(SRI_SECRET),
            Err(KeyError::PublicKey { len: 32 })
        );
        assert_eq!(
            AuthorityKeys::from_secret([0; 32]),
            Err(KeyError::SecretKey)
        );
        let other = AuthorityKeys::generate(|| [7; 32]);
        assert!(matches!(
            other.check_public(SRI_PUBLIC),
            Err(KeyError::Mismatch { .. })
        ));
        let mut n = 0u8;
        let fresh = AuthorityKeys::generate(|| {
            n += 1;
            [n; 32]
        });
        assert_eq!(
            AuthorityKeys::from_secret_text(&fresh.secret_text()).unwrap(),
            fresh
        );
    }
}
