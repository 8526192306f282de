//! Payout addresses to scriptPubKeys.
//!
//! Encoding rules (base58check version bytes, bech32 vs bech32m, witness program lengths)
//! are consensus-adjacent and easy to get subtly wrong, so they come from rust-bitcoin's
//! `Address` rather than our own encoder (see docs/architecture.md). Bitcoin Cash
//! networks take CashAddr (our [`crate::cashaddr`], which rust-bitcoin lacks) and legacy
//! base58 addresses, never segwit ones: BCH has no segwit, and a coinbase paying a
//! witness program there would be anyone's to spend.

use std::fmt;
use std::str::FromStr;

use crate::cashaddr::{self, CashAddrError};

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
    /// Bitcoin Cash mainnet: CashAddr `bitcoincash:` and legacy base58 (mainnet prefixes).
    BchMain,
    /// Bitcoin Cash testnets (testnet3/4, scalenet, chipnet): CashAddr `bchtest:`, legacy
    /// base58 with testnet prefixes.
    BchTest,
    /// Bitcoin Cash regtest: CashAddr `bchreg:`, legacy base58 with testnet prefixes.
    BchRegtest,
}

impl Network {
    /// Every network, in the order a miner without `--network` tries them.
    pub const ALL: [Network; 7] = [
        Network::Main,
        Network::Test,
        Network::Regtest,
        Network::Signet,
        Network::BchMain,
        Network::BchTest,
        Network::BchRegtest,
    ];

    /// The Bitcoin network whose legacy address prefixes this one shares.
    fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Main | Network::BchMain => bitcoin::Network::Bitcoin,
            Network::Test | Network::BchTest => bitcoin::Network::Testnet,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest | Network::BchRegtest => bitcoin::Network::Regtest,
        }
    }

    /// The CashAddr prefix on Bitcoin Cash networks.
    pub fn cashaddr_prefix(self) -> Option<&'static str> {
        match self {
            Network::BchMain => Some("bitcoincash"),
            Network::BchTest => Some("bchtest"),
            Network::BchRegtest => Some("bchreg"),
            _ => None,
        }
    }

    /// A test network (regtest, testnets, signet), where coins are worth nothing.
    pub fn is_test(self) -> bool {
        !matches!(self, Network::Main | Network::BchMain)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
            Network::BchMain => "bch",
            Network::BchTest => "bch-test",
            Network::BchRegtest => "bch-regtest",
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
            "bch" | "bch-main" | "bchmain" | "bitcoincash" => Ok(Network::BchMain),
            "bch-test" | "bchtest" | "bch-testnet" | "bch-testnet4" | "chipnet" | "scalenet" => {
                Ok(Network::BchTest)
            }
            "bch-regtest" | "bchreg" => Ok(Network::BchRegtest),
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
    /// A network name that is none of main, test, signet, regtest, bch, bch-test,
    /// bch-regtest.
    #[error(
        "unknown network {0:?}: expected main, test, signet, regtest, bch, bch-test or bch-regtest"
    )]
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

/// Parses `address` (P2PKH, P2SH, P2WPKH, P2WSH, P2TR, any segwit version) for `network`;
/// on Bitcoin Cash networks, CashAddr (with or without its prefix) and legacy P2PKH/P2SH.
pub fn parse(address: &str, network: Network) -> Result<PayoutAddress, AddressError> {
    let text = address.trim();
    if let Some(prefix) = network.cashaddr_prefix() {
        return parse_bch(text, prefix, network);
    }
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

/// A Bitcoin Cash address: CashAddr, or base58 with the Bitcoin prefixes BCH kept.
fn parse_bch(text: &str, prefix: &str, network: Network) -> Result<PayoutAddress, AddressError> {
    let invalid = |reason: String| AddressError::Invalid {
        address: text.to_string(),
        reason,
    };
    let cash = cashaddr::decode_for(text, prefix);
    let cash_error = match cash {
        Ok(addr) => {
            let script = addr.script_pubkey().ok_or_else(|| {
                invalid(format!(
                    "CashAddr type {} with a {}-byte hash pays no standard script",
                    addr.type_bits,
                    addr.hash.len()
                ))
            })?;
            return Ok(PayoutAddress {
                text: text.to_string(),
                script_pubkey: script,
            });
        }
        Err(CashAddrError::WrongPrefix { .. }) => {
            return Err(AddressError::WrongNetwork {
                address: text.to_string(),
                network,
            });
        }
        Err(e) => e,
    };
    // Not CashAddr: legacy base58 (never segwit, which BCH does not have).
    match bitcoin::Address::from_str(text) {
        Ok(unchecked) => {
            let checked = unchecked
                .require_network(network.to_bitcoin())
                .map_err(|_| AddressError::WrongNetwork {
                    address: text.to_string(),
                    network,
                })?;
            match checked.address_type() {
                Some(bitcoin::AddressType::P2pkh | bitcoin::AddressType::P2sh) => {
                    Ok(PayoutAddress {
                        text: text.to_string(),
                        script_pubkey: checked.script_pubkey().to_bytes(),
                    })
                }
                _ => Err(invalid(format!(
                    "a segwit address: Bitcoin Cash has no segwit; use a CashAddr ({prefix}:q...)"
                ))),
            }
        }
        // A text that looks like CashAddr gets CashAddr's reason (a checksum, a mixed
        // case); anything else base58's.
        Err(_)
            if text.contains(':') || text.starts_with(['q', 'p', 'z', 'r', 'Q', 'P', 'Z', 'R']) =>
        {
            Err(invalid(format!("CashAddr: {cash_error}")))
        }
        Err(e) => Err(invalid(e.to_string())),
    }
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

    #[test]
    fn bitcoin_cash_addresses() {
        // The spec's pair: CashAddr and legacy pay the same P2PKH script on BCH mainnet.
        let p2pkh = "76a91476a04053bda0a88bda5177b86a15c3b29f55987388ac";
        for a in [
            "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
            "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
            "BITCOINCASH:QPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVY22GDX6A",
            "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu",
        ] {
            assert_eq!(script_hex(a, Network::BchMain), p2pkh, "{a}");
        }
        // Regtest and P2SH.
        assert_eq!(
            script_hex(
                "bchreg:qpm2qsznhks23z7629mms6s4cwef74vcwv6ycwvz78",
                Network::BchRegtest
            ),
            p2pkh
        );
        assert_eq!(
            script_hex(
                "bchtest:ppm2qsznhks23z7629mms6s4cwef74vcwvhanqgjxu",
                Network::BchTest
            ),
            "a91476a04053bda0a88bda5177b86a15c3b29f55987387"
        );
        // A regtest node's legacy address works on BCH regtest too.
        assert_eq!(
            script_hex("mtCp8FwtHbxPDnW5LL7wUepNyzZeLnDC6P", Network::BchRegtest),
            "76a9148b2b542e5e3649ec074d78f5df36ca37b9733f9088ac"
        );
    }

    #[test]
    fn bitcoin_cash_errors_say_what_is_wrong() {
        let typo = parse(
            "bitcoincash:qpm2qsznqks23z7629mms6s4cwef74vcwvy22gdx6a",
            Network::BchMain,
        )
        .unwrap_err()
        .to_string();
        assert!(typo.contains("CashAddr: checksum mismatch"), "{typo}");
        assert_eq!(
            parse(
                "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
                Network::BchRegtest
            ),
            Err(AddressError::WrongNetwork {
                address: "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a".into(),
                network: Network::BchRegtest
            })
        );
        // Without its prefix, a mainnet payload fails regtest's checksum.
        assert!(
            parse(
                "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
                Network::BchRegtest
            )
            .is_err()
        );
        let segwit = parse(
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
            Network::BchRegtest,
        )
        .unwrap_err()
        .to_string();
        assert!(segwit.contains("Bitcoin Cash has no segwit"), "{segwit}");
        let mixed = parse(
            "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6A",
            Network::BchMain,
        )
        .unwrap_err()
        .to_string();
        assert!(mixed.contains("mixed upper and lower case"), "{mixed}");
        // CashAddr is not an address on Bitcoin networks.
        assert!(
            parse(
                "bchreg:qpm2qsznhks23z7629mms6s4cwef74vcwv6ycwvz78",
                Network::Regtest
            )
            .is_err()
        );
    }

    #[test]
    fn network_names() {
        for n in Network::ALL {
            assert_eq!(n.to_string().parse::<Network>(), Ok(n));
        }
        assert_eq!("bchreg".parse::<Network>(), Ok(Network::BchRegtest));
        assert_eq!("chipnet".parse::<Network>(), Ok(Network::BchTest));
        assert!(Network::BchRegtest.is_test());
        assert!(!Network::Main.is_test() && !Network::BchMain.is_test());
    }
}
