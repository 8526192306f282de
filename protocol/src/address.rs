//! Payout addresses to scriptPubKeys.
//!
//! Encoding rules (base58check version bytes, bech32 vs bech32m, witness program lengths)
//! are consensus-adjacent and easy to get subtly wrong, so they come from rust-bitcoin's
//! `Address` rather than our own encoder (see docs/architecture.md).

use std::fmt;
use std::str::FromStr;

/// The chain an address must belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Bitcoin mainnet (and the mainnets of its SHA-256d forks: same address prefixes).
    Main,
    /// Testnet (version 3 and 4 share prefixes).
    Test,
    /// Signet.
    Signet,
    /// Regtest: base58 prefixes of testnet, bech32 prefix `bcrt`.
    Regtest,
}

impl Network {
    fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Main => bitcoin::Network::Bitcoin,
            Network::Test => bitcoin::Network::Testnet,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        })
    }
}

impl FromStr for Network {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" | "mainnet" | "bitcoin" => Ok(Network::Main),
            "test" | "testnet" | "testnet3" | "testnet4" => Ok(Network::Test),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            other => Err(AddressError::UnknownNetwork(other.to_string())),
        }
    }
}

/// An address that cannot receive a payout on the configured network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not a base58check or bech32/bech32m address at all (bad checksum, bad characters,
    /// unknown version, wrong program length).
    #[error("{address:?} is not a valid address: {reason}")]
    Invalid {
        /// The text as given.
        address: String,
        /// What rust-bitcoin found wrong with it.
        reason: String,
    },
    /// A valid address of another network.
    #[error("{address:?} is not an address for the {network} network")]
    WrongNetwork {
        /// The text as given.
        address: String,
        /// The network it was checked against.
        network: Network,
    },
    /// A network name that is none of main, test, signet, regtest.
    #[error("unknown network {0:?}: expected main, test, signet or regtest")]
    UnknownNetwork(String),
}

/// A parsed payout address and the scriptPubKey that pays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutAddress {
    /// The address as the user wrote it (trimmed).
    pub text: String,
    /// The output script that pays it.
    pub script_pubkey: Vec<u8>,
}

/// Parses `address` (P2PKH, P2SH, P2WPKH, P2WSH, P2TR, any segwit version) for `network`.
pub fn parse(address: &str, network: Network) -> Result<PayoutAddress, AddressError> {
    let text = address.trim();
    let unchecked = bitcoin::Address::from_str(text).map_err(|e| AddressError::Invalid {
        address: text.to_string(),
        reason: e.to_string(),
    })?;
    let checked = unchecked
        .require_network(network.to_bitcoin())
        .map_err(|_| AddressError::WrongNetwork {
            address: text.to_string(),
            network,
        })?;
    Ok(PayoutAddress {
        text: text.to_string(),
        script_pubkey: checked.script_pubkey().to_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_hex(addr: &str, net: Network) -> String {
        hex::encode(parse(addr, net).unwrap().script_pubkey)
    }

    #[test]
    fn mainnet_kinds() {
        // P2PKH of the genesis coinbase key.
        assert_eq!(
            script_hex("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", Network::Main),
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"
        );
        // BIP 173 examples: P2WPKH and P2WSH.
        assert_eq!(
            script_hex("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", Network::Main),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        assert_eq!(
            script_hex("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", Network::Main),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        // BIP 350 example: segwit v1 (taproot) in bech32m.
        assert_eq!(
            script_hex(
                "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
                Network::Main
            ),
            "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        );
        // P2SH.
        assert_eq!(
            script_hex("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", Network::Main),
            "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87"
        );
    }

    #[test]
    fn test_and_regtest() {
        // BIP 173 testnet P2WSH example.
        assert_eq!(
            script_hex(
                "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
                Network::Test
            ),
            "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"
        );
        // Base58 testnet prefixes are shared with regtest (the captured ckpool session's
        // payout address, from a BSV regtest node).
        let a = "mtCp8FwtHbxPDnW5LL7wUepNyzZeLnDC6P";
        assert_eq!(
            script_hex(a, Network::Regtest),
            script_hex(a, Network::Test)
        );
        assert_eq!(
            script_hex(a, Network::Regtest),
            "76a9148b2b542e5e3649ec074d78f5df36ca37b9733f9088ac"
        );
        assert_eq!(
            script_hex(
                "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
                Network::Regtest
            ),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
    }

    #[test]
    fn bad_addresses_are_clear_errors() {
        assert!(matches!(
            parse("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", Network::Main),
            Err(AddressError::Invalid { .. })
        ));
        assert_eq!(
            parse("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", Network::Regtest),
            Err(AddressError::WrongNetwork {
                address: "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa".into(),
                network: Network::Regtest
            })
        );
        assert!(parse("", Network::Main).is_err());
        assert!(parse("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", Network::Main).is_err());
        assert!("mainnnet".parse::<Network>().is_err());
    }
}
