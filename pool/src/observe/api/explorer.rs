//! Block explorer links (`infoLink`, `transactionInfoLink`, `addressInfoLink`,
//! `lastPaymentLink`), as Miningcore fills them from its coin templates: URL templates per
//! network, overridable in `[api.explorer]`.

use protocol::address::Network;

use crate::config::ExplorerConfig;

/// The templates in use; `None`: no link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Explorer {
    block: Option<String>,
    tx: Option<String>,
    address: Option<String>,
}

impl Explorer {
    /// The configured templates, the network's usual explorer for those not configured,
    /// none for those configured empty.
    pub fn new(config: &ExplorerConfig, network: Network) -> Explorer {
        let usual = |path: &str| {
            let base = match network {
                Network::Main => "https://mempool.space",
                Network::Signet => "https://mempool.space/signet",
                Network::BchMain => "https://blockchair.com/bitcoin-cash",
                // Testnet 3 and 4 share their address prefixes: no guess. Regtest has none.
                Network::Test | Network::Regtest | Network::BchTest | Network::BchRegtest => {
                    return None;
                }
            };
            let path = match (network, path) {
                (Network::BchMain, "tx") => "transaction/{txid}",
                (_, "tx") => "tx/{txid}",
                (_, "address") => "address/{address}",
                _ => "block/{hash}",
            };
            Some(format!("{base}/{path}"))
        };
        let pick = |set: &Option<String>, path: &str| match set {
            Some(t) if t.trim().is_empty() => None,
            Some(t) => Some(t.trim().to_string()),
            None => usual(path),
        };
        Explorer {
            block: pick(&config.block, "block"),
            tx: pick(&config.tx, "tx"),
            address: pick(&config.address, "address"),
        }
    }

    /// A block's page.
    pub fn block(&self, hash: &str, height: i64) -> Option<String> {
        self.block.as_ref().map(|t| {
            t.replace("{hash}", hash)
                .replace("{height}", &height.to_string())
        })
    }

    /// A transaction's page.
    pub fn tx(&self, txid: &str) -> Option<String> {
        self.tx.as_ref().map(|t| t.replace("{txid}", txid))
    }

    /// An address's page.
    pub fn address(&self, address: &str) -> Option<String> {
        self.address
            .as_ref()
            .map(|t| t.replace("{address}", address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_explorers_per_network_and_overrides() {
        let none = ExplorerConfig::default();
        let main = Explorer::new(&none, Network::Main);
        assert_eq!(
            main.block("00ab", 5).as_deref(),
            Some("https://mempool.space/block/00ab")
        );
        assert_eq!(
            main.tx("ff").as_deref(),
            Some("https://mempool.space/tx/ff")
        );
        assert_eq!(
            main.address("bc1q").as_deref(),
            Some("https://mempool.space/address/bc1q")
        );
        let bch = Explorer::new(&none, Network::BchMain);
        assert_eq!(
            bch.tx("ff").as_deref(),
            Some("https://blockchair.com/bitcoin-cash/transaction/ff")
        );
        assert_eq!(Explorer::new(&none, Network::Regtest), Explorer::default());
        assert_eq!(Explorer::new(&none, Network::Test).block("00", 1), None);
        let own = ExplorerConfig {
            block: Some("https://explorer.example/height/{height}".into()),
            tx: Some(String::new()),
            address: None,
        };
        let own = Explorer::new(&own, Network::Main);
        assert_eq!(
            own.block("00ab", 840_000).as_deref(),
            Some("https://explorer.example/height/840000")
        );
        assert_eq!(own.tx("ff"), None, "empty: no link");
        assert!(own.address("bc1q").is_some(), "unset: the usual one");
    }
}
