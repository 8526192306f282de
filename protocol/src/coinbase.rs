//! The coinbase transaction, split around the extranonces as Stratum sends it.
//!
//! ```text
//! coinb1 = version | 1 input | prevout null | scriptSig length | height push | aux push | en push opcode
//!          extranonce1 | extranonce2            (filled in per miner, per share)
//! coinb2 = pool tag push | sequence | outputs (payouts, then witness commitment) | lock time
//! ```
//!
//! `coinb1 || extranonce1 || extranonce2 || coinb2` is the transaction without witness, whose
//! sha256d is the txid the merkle root is built from. For a segwit template the block carries
//! the same transaction with the BIP 141 coinbase witness (one 32-byte zero item) added.

use crate::block::push_compact_size;
use crate::hash::{Hash256, sha256d};
use crate::merkle;
use crate::template::CheckedTemplate;

/// The scriptSig must be between 2 and 100 bytes (consensus rule for coinbases).
pub const SCRIPT_SIG_MIN: usize = 2;
/// See [`SCRIPT_SIG_MIN`].
pub const SCRIPT_SIG_MAX: usize = 100;
/// The witness reserved value this software uses (BIP 141 allows any 32 bytes; all use zero).
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];
/// The 4 bytes that open a witness commitment's data push (BIP 141).
pub const WITNESS_COMMITMENT_HEADER: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];

/// One output of the coinbase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseOutput {
    /// Value in base units.
    pub value: u64,
    /// The script that the value pays.
    pub script_pubkey: Vec<u8>,
}

/// Everything the coinbase is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseSpec {
    /// Height of the block (BIP 34).
    pub height: u64,
    /// The template's `coinbaseaux` bytes; pushed as data when not empty.
    pub aux: Vec<u8>,
    /// A tag naming the pool, pushed after the extranonces; empty for none.
    pub pool_tag: Vec<u8>,
    /// Bytes of extranonce1 (per connection).
    pub extranonce1_len: usize,
    /// Bytes of extranonce2 (per share, chosen by the miner).
    pub extranonce2_len: usize,
    /// Payout outputs, in order. Their sum must not pass the coinbase value.
    pub outputs: Vec<CoinbaseOutput>,
    /// The coinbase value the outputs may spend (subsidy plus fees).
    pub coinbase_value: u64,
    /// The witness commitment output script, for segwit templates.
    pub witness_commitment: Option<Vec<u8>>,
}

/// Why a coinbase cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoinbaseError {
    /// The scriptSig would break the 2..=100 byte consensus rule.
    #[error(
        "coinbase scriptSig would be {len} bytes; consensus allows 2 to 100 \
         (shorten the pool tag or the extranonce sizes)"
    )]
    ScriptSigLength {
        /// The length it would have.
        len: usize,
    },
    /// More extranonce bytes than one push opcode can announce.
    #[error("extranonce1 + extranonce2 = {0} bytes; at most 75 are allowed")]
    ExtranonceTooLong(usize),
    /// No outputs to pay.
    #[error("a coinbase needs at least one payout output")]
    NoOutputs,
    /// The outputs spend more than the block may.
    #[error("coinbase outputs total {total}, above the coinbase value {allowed}")]
    OutputsExceedValue {
        /// What the outputs add up to.
        total: u64,
        /// The coinbase value.
        allowed: u64,
    },
    /// Our witness commitment differs from the node's `default_witness_commitment`.
    #[error("witness commitment {ours} differs from the node's {node}")]
    WitnessCommitmentMismatch {
        /// Hex of the script we computed.
        ours: String,
        /// Hex of the script the node sent.
        node: String,
    },
    /// Extranonces of the wrong size were given.
    #[error(
        "extranonce1 is {got1} bytes and extranonce2 {got2}; the job expects {want1} and {want2}"
    )]
    ExtranonceSize {
        /// Given extranonce1 length.
        got1: usize,
        /// Given extranonce2 length.
        got2: usize,
        /// Expected extranonce1 length.
        want1: usize,
        /// Expected extranonce2 length.
        want2: usize,
    },
}

/// A built coinbase: the two halves around the extranonces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coinbase {
    /// Bytes before the extranonces.
    pub coinb1: Vec<u8>,
    /// Bytes after the extranonces.
    pub coinb2: Vec<u8>,
    /// Expected extranonce1 length.
    pub extranonce1_len: usize,
    /// Expected extranonce2 length.
    pub extranonce2_len: usize,
    /// Whether the block needs the coinbase witness (segwit template).
    pub segwit: bool,
}

/// The BIP 34 height push exactly as Bitcoin Core writes it (`CScript() << height`):
/// OP_1..OP_16 for 1..=16, OP_0 for 0, otherwise a minimal little-endian script number.
pub fn bip34_height(height: u64) -> Vec<u8> {
    match height {
        0 => vec![0x00],
        1..=16 => vec![0x50 + height as u8],
        _ => {
            let mut num = Vec::new();
            let mut h = height;
            while h > 0 {
                num.push((h & 0xff) as u8);
                h >>= 8;
            }
            // Script numbers are signed: a set top bit needs a zero byte above it.
            if num.last().is_some_and(|&b| b & 0x80 != 0) {
                num.push(0);
            }
            let mut out = Vec::with_capacity(num.len() + 1);
            push_data(&mut out, &num);
            out
        }
    }
}

/// Appends a minimal data push of `data`.
pub fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    match data.len() {
        0..=75 => out.push(data.len() as u8),
        76..=255 => out.extend([0x4c, data.len() as u8]),
        n => {
            out.push(0x4d);
            out.extend((n as u16).to_le_bytes());
        }
    }
    out.extend_from_slice(data);
}

/// The OP_RETURN output script that commits to the block's witnesses (BIP 141).
pub fn witness_commitment_script(commitment: &Hash256) -> Vec<u8> {
    let mut script = vec![0x6a, 0x24];
    script.extend(WITNESS_COMMITMENT_HEADER);
    script.extend(commitment.0);
    script
}

/// The witness commitment script for a template, computed from its wtxids and checked
/// against the node's `default_witness_commitment`. `None` for templates without segwit.
pub fn template_witness_commitment(
    template: &CheckedTemplate,
) -> Result<Option<Vec<u8>>, CoinbaseError> {
    let Some(node) = &template.default_witness_commitment else {
        return Ok(None);
    };
    let root = merkle::witness_root(&template.wtxids());
    let ours =
        witness_commitment_script(&merkle::witness_commitment(&root, &WITNESS_RESERVED_VALUE));
    if &ours != node {
        return Err(CoinbaseError::WitnessCommitmentMismatch {
            ours: hex::encode(&ours),
            node: hex::encode(node),
        });
    }
    Ok(Some(ours))
}

impl Coinbase {
    /// Builds coinb1/coinb2 from a spec, enforcing the consensus limits.
    pub fn build(spec: &CoinbaseSpec) -> Result<Coinbase, CoinbaseError> {
        let en_len = spec.extranonce1_len + spec.extranonce2_len;
        if en_len > 75 {
            return Err(CoinbaseError::ExtranonceTooLong(en_len));
        }
        if spec.outputs.is_empty() {
            return Err(CoinbaseError::NoOutputs);
        }
        let total = spec
            .outputs
            .iter()
            .try_fold(0u64, |acc, o| acc.checked_add(o.value));
        match total {
            Some(total) if total <= spec.coinbase_value => {}
            _ => {
                return Err(CoinbaseError::OutputsExceedValue {
                    total: total.unwrap_or(u64::MAX),
                    allowed: spec.coinbase_value,
                });
            }
        }

        // The scriptSig, split at the extranonce.
        let mut sig_head = bip34_height(spec.height);
        if !spec.aux.is_empty() {
            push_data(&mut sig_head, &spec.aux);
        }
        if en_len > 0 {
            sig_head.push(en_len as u8);
        }
        let mut sig_tail = Vec::new();
        if !spec.pool_tag.is_empty() {
            push_data(&mut sig_tail, &spec.pool_tag);
        }
        let sig_len = sig_head.len() + en_len + sig_tail.len();
        if !(SCRIPT_SIG_MIN..=SCRIPT_SIG_MAX).contains(&sig_len) {
            return Err(CoinbaseError::ScriptSigLength { len: sig_len });
        }

        let mut coinb1 = Vec::with_capacity(64);
        coinb1.extend(1u32.to_le_bytes()); // version
        coinb1.push(1); // one input
        coinb1.extend([0u8; 32]); // null prevout hash
        coinb1.extend(u32::MAX.to_le_bytes()); // null prevout index
        push_compact_size(&mut coinb1, sig_len as u64);
        coinb1.extend(&sig_head);

        let mut coinb2 = sig_tail;
        coinb2.extend(u32::MAX.to_le_bytes()); // sequence
        let commitment = spec.witness_commitment.iter().map(|script| CoinbaseOutput {
            value: 0,
            script_pubkey: script.clone(),
        });
        let outputs: Vec<CoinbaseOutput> = spec.outputs.iter().cloned().chain(commitment).collect();
        push_compact_size(&mut coinb2, outputs.len() as u64);
        for output in &outputs {
            coinb2.extend(output.value.to_le_bytes());
            push_compact_size(&mut coinb2, output.script_pubkey.len() as u64);
            coinb2.extend(&output.script_pubkey);
        }
        coinb2.extend(0u32.to_le_bytes()); // lock time

        Ok(Coinbase {
            coinb1,
            coinb2,
            extranonce1_len: spec.extranonce1_len,
            extranonce2_len: spec.extranonce2_len,
            segwit: spec.witness_commitment.is_some(),
        })
    }

    /// The coinbase without witness (what the txid commits to).
    pub fn tx(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Result<Vec<u8>, CoinbaseError> {
        if extranonce1.len() != self.extranonce1_len || extranonce2.len() != self.extranonce2_len {
            return Err(CoinbaseError::ExtranonceSize {
                got1: extranonce1.len(),
                got2: extranonce2.len(),
                want1: self.extranonce1_len,
                want2: self.extranonce2_len,
            });
        }
        Ok(crate::stratum::work::join_coinbase(
            &self.coinb1,
            extranonce1,
            extranonce2,
            &self.coinb2,
        ))
    }

    /// The coinbase txid.
    pub fn txid(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Result<Hash256, CoinbaseError> {
        Ok(sha256d(&self.tx(extranonce1, extranonce2)?))
    }

    /// The coinbase as the block carries it: with the BIP 141 witness for segwit templates.
    pub fn block_tx(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
    ) -> Result<Vec<u8>, CoinbaseError> {
        let tx = self.tx(extranonce1, extranonce2)?;
        if !self.segwit {
            return Ok(tx);
        }
        let (body, lock_time) = tx.split_at(tx.len() - 4);
        let mut out = Vec::with_capacity(tx.len() + 36);
        out.extend(&body[..4]); // version
        out.extend([0x00, 0x01]); // marker, flag
        out.extend(&body[4..]); // inputs and outputs
        out.push(1); // one witness item
        push_compact_size(&mut out, WITNESS_RESERVED_VALUE.len() as u64);
        out.extend(WITNESS_RESERVED_VALUE);
        out.extend(lock_time);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip34_heights_as_bitcoin_core_encodes_them() {
        let cases: &[(u64, &str)] = &[
            (1, "51"),
            (16, "60"),
            (17, "0111"),
            (127, "017f"),
            (128, "028000"),
            (255, "02ff00"),
            (256, "020001"),
            (32767, "02ff7f"),
            (32768, "03008000"),
            (65535, "03ffff00"),
            (500000, "0320a107"),
            (8388607, "03ffff7f"),
            (8388608, "0400008000"),
        ];
        for &(height, expected) in cases {
            assert_eq!(
                hex::encode(bip34_height(height)),
                expected,
                "height {height}"
            );
            // rust-bitcoin's builder follows Core too.
            let theirs = bitcoin::script::Builder::new()
                .push_int(height as i64)
                .into_script();
            assert_eq!(bip34_height(height), theirs.to_bytes(), "height {height}");
        }
    }

    fn spec() -> CoinbaseSpec {
        CoinbaseSpec {
            height: 219,
            aux: vec![],
            pool_tag: b"/sha256d-stack/".to_vec(),
            extranonce1_len: 4,
            extranonce2_len: 8,
            outputs: vec![CoinbaseOutput {
                value: 2_500_000_000,
                script_pubkey: hex::decode("76a9148b2b542e5e3649ec074d78f5df36ca37b9733f9088ac")
                    .unwrap(),
            }],
            coinbase_value: 2_500_000_000,
            witness_commitment: None,
        }
    }

    #[test]
    fn script_sig_limits_are_enforced() {
        let mut s = spec();
        s.pool_tag = vec![b'x'; 90];
        assert!(
            matches!(Coinbase::build(&s), Err(CoinbaseError::ScriptSigLength { len }) if len > 100)
        );
        let mut s = spec();
        s.pool_tag.clear();
        s.extranonce1_len = 0;
        s.extranonce2_len = 0;
        s.height = 1;
        assert_eq!(
            Coinbase::build(&s),
            Err(CoinbaseError::ScriptSigLength { len: 1 })
        );
        let mut s = spec();
        s.extranonce2_len = 80;
        assert_eq!(
            Coinbase::build(&s),
            Err(CoinbaseError::ExtranonceTooLong(84))
        );
    }

    #[test]
    fn outputs_are_checked_against_the_value() {
        let mut s = spec();
        s.outputs[0].value += 1;
        assert!(matches!(
            Coinbase::build(&s),
            Err(CoinbaseError::OutputsExceedValue { .. })
        ));
        s.outputs.push(CoinbaseOutput {
            value: u64::MAX,
            script_pubkey: vec![],
        });
        assert!(matches!(
            Coinbase::build(&s),
            Err(CoinbaseError::OutputsExceedValue { .. })
        ));
        s.outputs.clear();
        assert_eq!(Coinbase::build(&s), Err(CoinbaseError::NoOutputs));
    }

    #[test]
    fn coinbase_parses_as_a_transaction_with_and_without_witness() {
        use bitcoin::consensus::deserialize;
        let mut s = spec();
        s.witness_commitment = Some(witness_commitment_script(&Hash256([7; 32])));
        let cb = Coinbase::build(&s).unwrap();
        let en1 = [1, 2, 3, 4];
        let en2 = [5; 8];
        let plain: bitcoin::Transaction = deserialize(&cb.tx(&en1, &en2).unwrap()).unwrap();
        let full: bitcoin::Transaction = deserialize(&cb.block_tx(&en1, &en2).unwrap()).unwrap();
        assert!(plain.is_coinbase());
        assert_eq!(full.compute_txid(), plain.compute_txid());
        assert_eq!(
            full.compute_txid().to_string(),
            cb.txid(&en1, &en2).unwrap().to_string()
        );
        assert_eq!(full.input[0].witness.len(), 1);
        assert_eq!(full.output.len(), 2);
        assert_eq!(full.output[1].value.to_sat(), 0);
        // The scriptSig starts with the BIP 34 height and holds the extranonces.
        let sig = full.input[0].script_sig.as_bytes();
        assert_eq!(&sig[..3], &[0x02, 0xdb, 0x00]);
        assert!(
            sig.windows(12)
                .any(|w| w == [1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5])
        );
        assert!(cb.tx(&en1, &[0; 4]).is_err());
    }
}
