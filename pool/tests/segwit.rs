//! Jobs from real Bitcoin Core segwit templates (testnet3 and signet, kept in the protocol
//! crate's test data): the header a miner builds from the job (coinbase + merkle branch)
//! is the header of the block the pool would submit, and rust-bitcoin finds that block's
//! merkle root and witness commitment valid.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use pool::chain::jobs::{CoinbaseSettings, JobMaker};
use pool::chain::template::Template;
use protocol::block::{Solution, assemble};
use protocol::template::BlockTemplate;
use protocol::{merkle, sha256d};

fn template(name: &str) -> Arc<Template> {
    let path = format!(
        "{}/../protocol/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Arc::new(Template {
        checked: BlockTemplate::from_json(&json).unwrap().validate().unwrap(),
        node: "fixture".into(),
        fetch_time: Duration::ZERO,
    })
}

#[test]
fn segwit_jobs_make_valid_blocks() {
    for name in [
        "gbt-testnet3-2442185-public-pool.json",
        "gbt-signet-956-p2poolv2.json",
    ] {
        let t = template(name);
        assert!(
            t.checked.default_witness_commitment.is_some(),
            "{name} is a segwit template"
        );
        // A P2WPKH payout, as a pool on a segwit chain would use.
        let mut script = vec![0x00, 0x14];
        script.extend([7u8; 20]);
        let settings = CoinbaseSettings {
            pool_tag: b"/test-pool/".to_vec(),
            extranonce2_size: 8,
        };
        let job = JobMaker::new(settings, Some(script))
            .make(t.clone(), 0)
            .unwrap();
        let coinbase = job.coinbase.as_deref().unwrap();
        let (en1, en2) = ([1, 2, 3, 4], [9u8; 8]);
        let solution = Solution {
            extranonce1: &en1,
            extranonce2: &en2,
            version: job.checked().version,
            time: job.ntime,
            nonce: 0x1234_5678,
        };
        let block = assemble(job.checked(), coinbase, &solution).unwrap();

        // What the miner computes from the notify fields.
        let txid = sha256d(&coinbase.tx(&en1, &en2).unwrap());
        assert_eq!(
            merkle::root_from_branch(&txid, &job.branch),
            block.header.merkle_root,
            "{name}: branch and block agree"
        );
        let decoded: bitcoin::Block = bitcoin::consensus::deserialize(&block.bytes).unwrap();
        assert!(decoded.check_merkle_root(), "{name}: merkle root");
        assert!(
            decoded.check_witness_commitment(),
            "{name}: witness commitment"
        );
        assert_eq!(decoded.txdata.len(), t.checked.transactions.len() + 1);
        assert_eq!(
            decoded.txdata[0].output[0].value.to_sat(),
            t.checked.coinbase_value,
            "{name}: the pool output takes the whole reward"
        );
    }
}
