//! getblocktemplate request and response types (BIP 22, BIP 23, BIP 9, BIP 145).
//!
//! Nodes differ in what they send: Bitcoin Core sends `rules`, `txid`, `weight` and
//! `default_witness_commitment`; Bitcoin SV and older nodes send none of those and use
//! `hash` for the txid. Every field a node may leave out is optional here, and
//! [`BlockTemplate::validate`] turns the raw JSON into checked values with one error per
//! malformed field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::{Hash256, sha256d};
use crate::hexfmt::HexError;
use crate::target::{CompactError, CompactTarget, Target};

/// The request object (the single element of getblocktemplate's params).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRequest {
    /// Softfork rules the client supports; Bitcoin Core requires "segwit".
    pub rules: Vec<String>,
    /// Client capabilities (BIP 22/23).
    pub capabilities: Vec<String>,
    /// The long-poll id of the last template: the node answers when it changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longpollid: Option<String>,
}

impl Default for TemplateRequest {
    fn default() -> Self {
        TemplateRequest {
            rules: vec!["segwit".into()],
            capabilities: vec![
                "coinbasetxn".into(),
                "workid".into(),
                "coinbase/append".into(),
            ],
            longpollid: None,
        }
    }
}

impl TemplateRequest {
    /// A long-poll request that returns once the template behind `longpollid` is outdated.
    pub fn longpoll(longpollid: impl Into<String>) -> Self {
        let mut request = TemplateRequest::default();
        request.capabilities.push("longpoll".into());
        request.longpollid = Some(longpollid.into());
        request
    }

    /// The JSON-RPC `params` array.
    pub fn to_params(&self) -> serde_json::Value {
        serde_json::json!([self])
    }
}

/// A transaction of the template, as the node sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateTransaction {
    /// The transaction, serialized with witness when it has one, hex.
    pub data: String,
    /// Txid, display hex (BIP 145; Bitcoin Core only).
    #[serde(default)]
    pub txid: Option<String>,
    /// Wtxid on segwit nodes; the txid on nodes that predate BIP 145.
    #[serde(default)]
    pub hash: Option<String>,
    /// 1-based indexes of transactions this one depends on.
    #[serde(default)]
    pub depends: Vec<u32>,
    /// Fee in base units.
    #[serde(default)]
    pub fee: Option<i64>,
    /// Signature operations.
    #[serde(default)]
    pub sigops: Option<i64>,
    /// BIP 141 weight.
    #[serde(default)]
    pub weight: Option<u64>,
}

/// The getblocktemplate result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockTemplate {
    /// Block version, with BIP 9 bits already set by the node.
    pub version: u32,
    /// Rules in effect (a leading "!" marks a rule the client must understand).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Capabilities the node supports.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// BIP 9 deployments that may be signalled.
    #[serde(default)]
    pub vbavailable: BTreeMap<String, u32>,
    /// Version bits the client must set.
    #[serde(default)]
    pub vbrequired: Option<u32>,
    /// Previous block hash, display hex.
    pub previousblockhash: String,
    /// Transactions to include after the coinbase, in order.
    #[serde(default)]
    pub transactions: Vec<TemplateTransaction>,
    /// Data the coinbase scriptSig should carry (`flags`, hex).
    #[serde(default)]
    pub coinbaseaux: BTreeMap<String, String>,
    /// Subsidy plus fees, base units.
    pub coinbasevalue: u64,
    /// Long-poll id for the next request.
    #[serde(default)]
    pub longpollid: Option<String>,
    /// The network target, 64 hex digits big-endian.
    #[serde(default)]
    pub target: Option<String>,
    /// Earliest allowed block time.
    #[serde(default)]
    pub mintime: Option<u32>,
    /// What the client may change.
    #[serde(default)]
    pub mutable: Vec<String>,
    /// Nonce range, hex.
    #[serde(default)]
    pub noncerange: Option<String>,
    /// Sigop limit.
    #[serde(default)]
    pub sigoplimit: Option<u64>,
    /// Size limit in bytes.
    #[serde(default)]
    pub sizelimit: Option<u64>,
    /// Weight limit.
    #[serde(default)]
    pub weightlimit: Option<u64>,
    /// The node's current time.
    pub curtime: u32,
    /// The network target in compact form, 8 hex digits.
    pub bits: String,
    /// Height of the block to be built.
    pub height: u64,
    /// The witness commitment output script the node computed, hex (segwit nodes only).
    #[serde(default)]
    pub default_witness_commitment: Option<String>,
}

/// A template field that does not hold what BIP 22/23 says it must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A hex field that does not decode.
    #[error("template field {field}: {source}")]
    Hex {
        /// Which field.
        field: String,
        /// Why.
        source: HexError,
    },
    /// `bits` is negative or overflows.
    #[error("template bits: {0}")]
    Bits(#[from] CompactError),
    /// `target` and `bits` disagree.
    #[error("template target {target} does not match bits {bits:?}")]
    TargetMismatch {
        /// The target field.
        target: String,
        /// The bits field.
        bits: CompactTarget,
    },
    /// A rule marked required ("!name") that this software does not implement.
    #[error("template requires rule {0:?}, which this software does not support")]
    UnsupportedRule(String),
}

/// A transaction of a validated template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedTransaction {
    /// The serialized transaction.
    pub data: Vec<u8>,
    /// Txid, internal order.
    pub txid: Hash256,
    /// Wtxid, internal order (equals the txid for a transaction without witness).
    pub wtxid: Hash256,
    /// Fee, base units, when the node sent one.
    pub fee: Option<i64>,
}

/// A template with every field decoded and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedTemplate {
    /// Block version.
    pub version: u32,
    /// Previous block hash.
    pub prev_hash: Hash256,
    /// Network target, compact.
    pub bits: CompactTarget,
    /// Network target.
    pub target: Target,
    /// Height of the block to build.
    pub height: u64,
    /// The node's time.
    pub curtime: u32,
    /// Earliest allowed time (curtime when the node does not say).
    pub mintime: u32,
    /// Coinbase value, base units.
    pub coinbase_value: u64,
    /// The `coinbaseaux` values concatenated in key order, to go in the scriptSig.
    pub coinbase_aux: Vec<u8>,
    /// Transactions after the coinbase.
    pub transactions: Vec<CheckedTransaction>,
    /// The node's witness commitment script, if it sent one.
    pub default_witness_commitment: Option<Vec<u8>>,
    /// Long-poll id.
    pub longpollid: Option<String>,
}

/// Rules this software implements; a template that requires another one is refused.
pub const SUPPORTED_RULES: &[&str] = &["segwit", "csv", "taproot", "signet"];

impl BlockTemplate {
    /// Parses a getblocktemplate result.
    pub fn from_json(value: &serde_json::Value) -> Result<BlockTemplate, serde_json::Error> {
        BlockTemplate::deserialize(value)
    }

    /// Decodes and checks every field.
    pub fn validate(&self) -> Result<CheckedTemplate, TemplateError> {
        for rule in &self.rules {
            if let Some(required) = rule.strip_prefix('!')
                && !SUPPORTED_RULES.contains(&required)
            {
                return Err(TemplateError::UnsupportedRule(required.to_string()));
            }
        }
        let hex_err = |field: &str| {
            let field = field.to_string();
            move |source| TemplateError::Hex {
                field: field.clone(),
                source,
            }
        };
        let prev_hash = Hash256::from_display_hex(&self.previousblockhash)
            .map_err(hex_err("previousblockhash"))?;
        let bits = CompactTarget::from_hex(&self.bits).map_err(hex_err("bits"))?;
        let target = bits.to_target()?;
        if let Some(t) = &self.target {
            let given = Target::from_be_hex(t).map_err(hex_err("target"))?;
            if given != target {
                return Err(TemplateError::TargetMismatch {
                    target: t.clone(),
                    bits,
                });
            }
        }
        let mut coinbase_aux = Vec::new();
        for (key, value) in &self.coinbaseaux {
            coinbase_aux.extend(hex::decode(value).map_err(|e| TemplateError::Hex {
                field: format!("coinbaseaux.{key}"),
                source: e.into(),
            })?);
        }
        let transactions = self
            .transactions
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                tx.check().map_err(|(what, source)| TemplateError::Hex {
                    field: format!("transactions[{i}].{what}"),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let default_witness_commitment = self
            .default_witness_commitment
            .as_deref()
            .map(hex::decode)
            .transpose()
            .map_err(|e| TemplateError::Hex {
                field: "default_witness_commitment".into(),
                source: e.into(),
            })?;
        Ok(CheckedTemplate {
            version: self.version,
            prev_hash,
            bits,
            target,
            height: self.height,
            curtime: self.curtime,
            mintime: self.mintime.unwrap_or(self.curtime),
            coinbase_value: self.coinbasevalue,
            coinbase_aux,
            transactions,
            default_witness_commitment,
            longpollid: self.longpollid.clone(),
        })
    }
}

impl TemplateTransaction {
    fn check(&self) -> Result<CheckedTransaction, (&'static str, HexError)> {
        let data = hex::decode(&self.data).map_err(|e| ("data", e.into()))?;
        let parse = |what: &'static str, s: &Option<String>| {
            s.as_deref()
                .map(Hash256::from_display_hex)
                .transpose()
                .map_err(|e| (what, e))
        };
        let txid = parse("txid", &self.txid)?;
        let hash = parse("hash", &self.hash)?;
        // BIP 145 nodes send txid and hash (= wtxid); older ones send only hash (= txid).
        // With neither, the data has no witness on such nodes and its hash is the txid.
        let (txid, wtxid) = match (txid, hash) {
            (Some(txid), Some(wtxid)) => (txid, wtxid),
            (Some(txid), None) => (txid, txid),
            (None, Some(txid)) => (txid, txid),
            (None, None) => {
                let txid = sha256d(&data);
                (txid, txid)
            }
        };
        Ok(CheckedTransaction {
            data,
            txid,
            wtxid,
            fee: self.fee,
        })
    }
}

impl CheckedTemplate {
    /// Whether blocks from this template need a witness commitment (any segwit template).
    pub fn is_segwit(&self) -> bool {
        self.default_witness_commitment.is_some()
    }

    /// Txids after the coinbase, in block order.
    pub fn txids(&self) -> Vec<Hash256> {
        self.transactions.iter().map(|t| t.txid).collect()
    }

    /// Wtxids after the coinbase, in block order.
    pub fn wtxids(&self) -> Vec<Hash256> {
        self.transactions.iter().map(|t| t.wtxid).collect()
    }
}
