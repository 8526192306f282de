//! Messages signed with an address's key, as wallets' "sign message" makes them: Bitcoin
//! Core's `signmessage`, Electrum, Sparrow and hardware wallets. The signature is 65 bytes
//! in base64: a header byte, then a recoverable ECDSA signature of
//! `sha256d("\x18Bitcoin Signed Message:\n" || len || message)`. The public key is
//! recovered from it and the address it hashes to must be the one claimed.
//!
//! Address types verified: P2PKH (every wallet; on the Bitcoin Cash networks too, in
//! CashAddr or legacy form), and for a compressed key P2WPKH and P2SH-P2WPKH (BIP 137
//! headers 35-42, and the compressed P2PKH header 31-34 that Electrum uses for segwit
//! addresses). P2WSH, P2TR and other script addresses cannot be verified this way: they
//! need BIP 322, which is not implemented; [`verify`] says so.

use bitcoin::hashes::{Hash, hash160};
use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sign_message::signed_msg_hash;

use crate::address::PayoutAddress;

/// Why a signature cannot be checked at all (a signature that is well formed but made by
/// another key is not an error: [`verify`] answers `false`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not base64 of 65 bytes with a header byte from 27 to 42.
    #[error("the signature is not a wallet message signature (base64 of 65 bytes): {0}")]
    Malformed(String),
    /// The address is of a type whose signatures are not verified here.
    #[error(
        "{0} addresses cannot sign messages the way wallets' \"sign message\" does (that needs \
         BIP 322, which this pool does not verify); use a P2PKH, P2WPKH or P2SH-P2WPKH address"
    )]
    Unsupported(&'static str),
}

/// Whether `signature` (base64) signs `message` with the key of `address`.
pub fn verify(
    address: &PayoutAddress,
    message: &str,
    signature: &str,
) -> Result<bool, SignatureError> {
    let script = address.script_pubkey.as_slice();
    let kind = script_kind(script)?;
    let bytes = base64_decode(signature.trim())
        .ok_or_else(|| SignatureError::Malformed("not base64".into()))?;
    let [header, compact @ ..] = bytes.as_slice() else {
        return Err(SignatureError::Malformed("empty".into()));
    };
    if compact.len() != 64 || !(27..=42).contains(header) {
        return Err(SignatureError::Malformed(format!(
            "{} bytes with header {header}",
            bytes.len()
        )));
    }
    let flags = header - 27;
    let compressed = flags >= 4;
    let recovery = RecoveryId::from_i32(i32::from(flags & 3))
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let Ok(recoverable) = RecoverableSignature::from_compact(compact, recovery) else {
        return Ok(false);
    };
    let digest = Message::from_digest(signed_msg_hash(message).to_byte_array());
    let Ok(key) = Secp256k1::verification_only().recover_ecdsa(&digest, &recoverable) else {
        return Ok(false);
    };
    let key_hash = if compressed {
        hash160::Hash::hash(&key.serialize())
    } else {
        hash160::Hash::hash(&key.serialize_uncompressed())
    };
    let key_hash = key_hash.to_byte_array();
    Ok(match kind {
        Kind::P2pkh => script[3..23] == key_hash,
        // Segwit keys are compressed by rule.
        Kind::P2wpkh => compressed && script[2..22] == key_hash,
        Kind::P2sh => {
            let mut redeem = vec![0x00, 0x14];
            redeem.extend_from_slice(&key_hash);
            compressed && script[2..22] == hash160::Hash::hash(&redeem).to_byte_array()
        }
    })
}

/// The text a miner signs to change its settings on a pool: one line, with the pool, the
/// address, each setting and a timestamp, so a signature is good for that change on that
/// pool only and cannot be replayed later (the pool keeps the last timestamp it took).
pub fn settings_message(pool: &str, address: &str, settings: &str, timestamp: u64) -> String {
    format!("sha256d-pool settings pool={pool} address={address} {settings} timestamp={timestamp}")
}

enum Kind {
    P2pkh,
    P2wpkh,
    P2sh,
}

fn script_kind(script: &[u8]) -> Result<Kind, SignatureError> {
    match script {
        [0x76, 0xa9, 0x14, .., 0x88, 0xac] if script.len() == 25 => Ok(Kind::P2pkh),
        [0x00, 0x14, ..] if script.len() == 22 => Ok(Kind::P2wpkh),
        [0xa9, 0x14, .., 0x87] if script.len() == 23 => Ok(Kind::P2sh),
        [0x00, 0x20, ..] if script.len() == 34 => Err(SignatureError::Unsupported("P2WSH")),
        [0x51, 0x20, ..] if script.len() == 34 => Err(SignatureError::Unsupported("P2TR")),
        _ => Err(SignatureError::Unsupported("these")),
    }
}

/// Standard base64 with padding (what every wallet writes).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use bitcoin::base64::Engine;
    bitcoin::base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Network, parse};
    use bitcoin::secp256k1::SecretKey;

    fn main_address(text: &str) -> PayoutAddress {
        parse(text, Network::Main).unwrap()
    }

    /// Bitcoin Core's own vectors (src/test/util_tests.cpp, `message_verify`).
    #[test]
    fn bitcoin_cores_vectors() {
        let signer = main_address("15CRxFdyRpGZLW9w8HnHvVduizdL5jKNbs");
        let signature = "IPojfrX2dfPnH26UegfbGQQLrdK844DlHq5157/P6h57WyuS/Qsl+h/WSVGDF4MUi4rWSswW38oimDYfNNUBUOk=";
        assert_eq!(verify(&signer, "Trust no one", signature), Ok(true));
        assert_eq!(verify(&signer, "I never signed this", signature), Ok(false));
        let vanity = main_address("11canuhp9X2NocwCq7xNrQYTmUgZAnLK3");
        let signature = "IIcaIENoYW5jZWxsb3Igb24gYnJpbmsgb2Ygc2Vjb25kIGJhaWxvdXQgZm9yIGJhbmtzIAaHRtbCeDZINyavx14=";
        assert_eq!(verify(&vanity, "Trust me", signature), Ok(true));
        // Another address, the same signature: not signed by it.
        assert_eq!(verify(&vanity, "Trust no one", signature), Ok(false));
    }

    /// Signs like a wallet: the recoverable signature with `header_base` + recovery id.
    fn sign(secret: &SecretKey, message: &str, header_base: u8) -> String {
        use bitcoin::base64::Engine;
        let digest = Message::from_digest(signed_msg_hash(message).to_byte_array());
        let (id, compact) = Secp256k1::signing_only()
            .sign_ecdsa_recoverable(&digest, secret)
            .serialize_compact();
        let mut bytes = vec![header_base + id.to_i32() as u8];
        bytes.extend_from_slice(&compact);
        bitcoin::base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn segwit_keys_sign_with_bip137_or_electrum_headers() {
        let secret = SecretKey::from_slice(&[0x42; 32]).unwrap();
        let key = bitcoin::CompressedPublicKey(secret.public_key(&Secp256k1::signing_only()));
        let p2wpkh = bitcoin::Address::p2wpkh(&key, bitcoin::Network::Bitcoin);
        let p2sh = bitcoin::Address::p2shwpkh(&key, bitcoin::Network::Bitcoin);
        let p2pkh = bitcoin::Address::p2pkh(key, bitcoin::Network::Bitcoin);
        let [p2wpkh, p2sh, p2pkh] = [p2wpkh, p2sh, p2pkh].map(|a| main_address(&a.to_string()));
        let message = settings_message("pool", &p2wpkh.text, "paymentThreshold=0.05", 1);
        // BIP 137: 39-42 for P2WPKH, 35-38 for P2SH-P2WPKH; Electrum: 31-34 for all three.
        assert_eq!(
            verify(&p2wpkh, &message, &sign(&secret, &message, 39)),
            Ok(true)
        );
        assert_eq!(
            verify(&p2sh, &message, &sign(&secret, &message, 35)),
            Ok(true)
        );
        for address in [&p2wpkh, &p2sh, &p2pkh] {
            assert_eq!(
                verify(address, &message, &sign(&secret, &message, 31)),
                Ok(true)
            );
        }
        // The same key uncompressed hashes to another P2PKH address, and to no segwit one.
        for address in [&p2wpkh, &p2sh, &p2pkh] {
            assert_eq!(
                verify(address, &message, &sign(&secret, &message, 27)),
                Ok(false)
            );
        }
        // A changed message, or another key, does not verify.
        let other = SecretKey::from_slice(&[0x43; 32]).unwrap();
        assert_eq!(
            verify(&p2wpkh, &message, &sign(&other, &message, 39)),
            Ok(false)
        );
        let changed = message.replace("0.05", "0.06");
        assert_eq!(
            verify(&p2wpkh, &changed, &sign(&secret, &message, 39)),
            Ok(false)
        );
    }

    #[test]
    fn malformed_signatures_and_unsupported_addresses_are_named() {
        let p2pkh = main_address("15CRxFdyRpGZLW9w8HnHvVduizdL5jKNbs");
        for bad in ["", "not base64!", "AAAA", &"A".repeat(88)] {
            assert!(
                matches!(verify(&p2pkh, "m", bad), Err(SignatureError::Malformed(_))),
                "{bad:?}"
            );
        }
        let taproot =
            main_address("bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297");
        let signature = "IPojfrX2dfPnH26UegfbGQQLrdK844DlHq5157/P6h57WyuS/Qsl+h/WSVGDF4MUi4rWSswW38oimDYfNNUBUOk=";
        assert_eq!(
            verify(&taproot, "m", signature),
            Err(SignatureError::Unsupported("P2TR"))
        );
        let p2wsh = main_address("bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3");
        assert_eq!(
            verify(&p2wsh, "m", signature),
            Err(SignatureError::Unsupported("P2WSH"))
        );
    }
}
