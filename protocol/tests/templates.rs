//! Real getblocktemplate responses with segwit transactions, and a real segwit block.
//!
//! Fixtures (tests/data/README.md says where each comes from):
//! - gbt-signet-956-p2poolv2.json: Bitcoin Core, signet, 4 segwit transactions.
//! - gbt-testnet3-2442185-public-pool.json: Bitcoin Core, testnet3, 5 transactions, 3 segwit.
//! - block-regtest-103-segwit.hex: a regtest block with two P2SH-P2WPKH spends, from Bitcoin
//!   Core's functional test data.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use bitcoin::consensus::{deserialize, serialize};
use protocol::address::{self, Network};
use protocol::block::{self, Solution};
use protocol::coinbase::{
    Coinbase, CoinbaseError, CoinbaseOutput, CoinbaseSpec, template_witness_commitment,
};
use protocol::merkle;
use protocol::stratum::{Notify, share_header};
use protocol::template::{BlockTemplate, CheckedTemplate};
use protocol::{BlockHeader, Hash256, sha256d};

fn load(text: &str) -> CheckedTemplate {
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    BlockTemplate::from_json(&json).unwrap().validate().unwrap()
}

fn templates() -> Vec<(&'static str, CheckedTemplate)> {
    vec![
        (
            "signet 956",
            load(include_str!("data/gbt-signet-956-p2poolv2.json")),
        ),
        (
            "testnet3 2442185",
            load(include_str!("data/gbt-testnet3-2442185-public-pool.json")),
        ),
    ]
}

#[test]
fn template_txids_agree_with_the_transaction_data() {
    for (name, t) in templates() {
        let mut segwit = 0;
        for tx in &t.transactions {
            let parsed: bitcoin::Transaction = deserialize(&tx.data).unwrap();
            assert_eq!(
                parsed.compute_txid().to_string(),
                tx.txid.to_string(),
                "{name}"
            );
            assert_eq!(
                parsed.compute_wtxid().to_string(),
                tx.wtxid.to_string(),
                "{name}"
            );
            assert_eq!(sha256d(&tx.data), tx.wtxid, "{name}");
            segwit += usize::from(tx.txid != tx.wtxid);
        }
        assert!(segwit >= 3, "{name} has {segwit} segwit transactions");
    }
}

#[test]
fn our_witness_commitment_equals_the_nodes() {
    for (name, t) in templates() {
        let ours = template_witness_commitment(&t).unwrap().unwrap();
        assert_eq!(Some(ours), t.default_witness_commitment, "{name}");
    }
    // A template whose transactions changed no longer matches its commitment.
    let (_, mut t) = templates().remove(0);
    t.transactions.swap(0, 1);
    assert!(matches!(
        template_witness_commitment(&t),
        Err(CoinbaseError::WitnessCommitmentMismatch { .. })
    ));
}

fn coinbase_for(t: &CheckedTemplate, network: Network, addr: &str) -> Coinbase {
    let payout = address::parse(addr, network).unwrap();
    Coinbase::build(&CoinbaseSpec {
        height: t.height,
        aux: t.coinbase_aux.clone(),
        pool_tag: b"/sha256d-stack/".to_vec(),
        extranonce1_len: 4,
        extranonce2_len: 8,
        outputs: vec![CoinbaseOutput {
            value: t.coinbase_value,
            script_pubkey: payout.script_pubkey,
        }],
        coinbase_value: t.coinbase_value,
        witness_commitment: template_witness_commitment(t).unwrap(),
    })
    .unwrap()
}

#[test]
fn assembled_segwit_blocks_are_consistent() {
    for (name, t) in templates() {
        let network = if name.starts_with("signet") {
            Network::Signet
        } else {
            Network::Test
        };
        let cb = coinbase_for(&t, network, "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx");
        let (en1, en2) = ([0xde, 0xad, 0xbe, 0xef], [0, 0, 0, 0, 0, 0, 0, 42]);
        let solution = Solution {
            extranonce1: &en1,
            extranonce2: &en2,
            version: t.version,
            time: t.curtime,
            nonce: 12345,
        };
        let assembled = block::assemble(&t, &cb, &solution).unwrap();

        // rust-bitcoin reads the block and finds the merkle root and witness commitment right.
        let parsed: bitcoin::Block = deserialize(&assembled.bytes).unwrap();
        assert!(parsed.check_merkle_root(), "{name}");
        assert!(parsed.check_witness_commitment(), "{name}");
        assert_eq!(
            parsed.block_hash().to_string(),
            assembled.hash().to_string(),
            "{name}"
        );
        assert_eq!(parsed.bip34_block_height().unwrap(), t.height, "{name}");
        assert_eq!(serialize(&parsed), assembled.bytes, "{name}");
        assert_eq!(parsed.txdata.len(), t.transactions.len() + 1);
        assert_eq!(parsed.txdata[0].output.last().unwrap().value.to_sat(), 0);

        // The Stratum path (branch + notify + submit) gives the same header.
        let notify = Notify {
            job_id: "1".into(),
            prev_hash: t.prev_hash,
            coinb1: cb.coinb1.clone(),
            coinb2: cb.coinb2.clone(),
            merkle_branch: merkle::coinbase_branch(&t.txids()),
            version: t.version,
            nbits: t.bits,
            ntime: t.curtime,
            clean_jobs: true,
        };
        let header = share_header(&notify, &en1, &en2, t.version, t.curtime, 12345);
        assert_eq!(header, assembled.header, "{name}");
    }
}

#[test]
fn real_segwit_block_commitment_root_and_bytes() {
    let raw = hex::decode(include_str!("data/block-regtest-103-segwit.hex").trim()).unwrap();
    let parsed: bitcoin::Block = deserialize(&raw).unwrap();
    let header = BlockHeader::decode(&raw[..80]).unwrap();
    assert_eq!(
        header.hash().to_string(),
        "4ac7022a3f15b93d437c1e22b8ab5e0c8c4dd7352a35dd0de4a39c33d2efccc0"
    );

    // Wtxids are sha256d of the witness serialization; the coinbase's counts as zero.
    let wtxids: Vec<Hash256> = parsed.txdata[1..]
        .iter()
        .map(|tx| sha256d(&serialize(tx)))
        .collect();
    // Two of its three spends carry witnesses, one does not: both kinds are in the root.
    let with_witness = parsed.txdata[1..]
        .iter()
        .filter(|tx| !tx.input[0].witness.is_empty());
    assert_eq!(with_witness.count(), 2);
    let reserved: [u8; 32] = parsed.txdata[0].input[0]
        .witness
        .nth(0)
        .unwrap()
        .try_into()
        .unwrap();
    let commitment = merkle::witness_commitment(&merkle::witness_root(&wtxids), &reserved);
    let script = protocol::coinbase::witness_commitment_script(&commitment);
    let in_block = parsed.txdata[0]
        .output
        .iter()
        .rev()
        .find(|o| {
            o.script_pubkey
                .as_bytes()
                .starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
        })
        .unwrap();
    assert_eq!(in_block.script_pubkey.as_bytes(), &script[..]);

    // Merkle root from txids (witness stripped), and the block re-serialized byte for byte.
    let txids: Vec<Hash256> = parsed
        .txdata
        .iter()
        .map(|tx| Hash256::from_display_hex(&tx.compute_txid().to_string()).unwrap())
        .collect();
    assert_eq!(merkle::root(&txids), header.merkle_root);
    let coinbase = serialize(&parsed.txdata[0]);
    let rest: Vec<Vec<u8>> = parsed.txdata[1..].iter().map(serialize).collect();
    assert_eq!(block::serialize(&header, &coinbase, &rest), raw);
}

#[test]
fn legacy_block_reserializes() {
    let raw = hex::decode(include_str!("data/block-regtest-102-legacy.hex").trim()).unwrap();
    let parsed: bitcoin::Block = deserialize(&raw).unwrap();
    let header = BlockHeader::decode(&raw[..80]).unwrap();
    assert_eq!(
        header.hash().to_string(),
        "d95ee37e9525042ca3cc8f97664700db26172667a2ee8d70ba89000e270e5d4f"
    );
    // Its coinbase has a witness (segwit active) but no other transaction does, so the
    // second transaction's txid is the sha256d of its bytes.
    assert_eq!(
        sha256d(&serialize(&parsed.txdata[1])).to_string(),
        parsed.txdata[1].compute_txid().to_string()
    );
    let txids: Vec<Hash256> = parsed
        .txdata
        .iter()
        .map(|tx| tx.compute_txid().to_string().parse().unwrap())
        .collect();
    assert_eq!(merkle::root(&txids), header.merkle_root);
    let coinbase = serialize(&parsed.txdata[0]);
    assert_eq!(
        block::serialize(&header, &coinbase, &[serialize(&parsed.txdata[1])]),
        raw
    );
}

#[test]
fn templates_from_nodes_without_bip145_fields() {
    // Bitcoin SV / pre-segwit shape: no rules, no txid, no commitment; "hash" is the txid.
    let json = serde_json::json!({
        "version": 536870912,
        "previousblockhash": "3d8cd7816d179d4069e228d330c5cd8a29290596e53c2472f929f9a600000063",
        "transactions": [{"data": "00", "hash": "3d8cd7816d179d4069e228d330c5cd8a29290596e53c2472f929f9a600000063"}],
        "coinbaseaux": {"flags": "062f503253482f"},
        "coinbasevalue": 2500000000u64,
        "curtime": 1795056235,
        "bits": "207fffff",
        "height": 220
    });
    let t = BlockTemplate::from_json(&json).unwrap().validate().unwrap();
    assert!(!t.is_segwit());
    assert_eq!(t.transactions[0].txid, t.transactions[0].wtxid);
    assert_eq!(t.mintime, t.curtime);
    assert_eq!(t.coinbase_aux, hex::decode("062f503253482f").unwrap());
    assert_eq!(template_witness_commitment(&t), Ok(None));

    // Bad fields are named in the error.
    let mut bad = json.clone();
    bad["bits"] = "zz".into();
    let err = BlockTemplate::from_json(&bad)
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("bits"), "{err}");
    let mut bad = json.clone();
    bad["rules"] = serde_json::json!(["!frobnicate"]);
    assert!(BlockTemplate::from_json(&bad).unwrap().validate().is_err());
    let mut bad = json;
    bad["target"] = "00".repeat(32).into();
    assert!(BlockTemplate::from_json(&bad).unwrap().validate().is_err());
}
