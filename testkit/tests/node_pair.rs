//! The regtest node pair serves real templates, and a block built from one by the protocol
//! crate and mined here is accepted by the node and relayed to its peer.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use protocol::Hash256;
use protocol::address::{self, Network};
use protocol::block::{self, Solution};
use protocol::coinbase::{Coinbase, CoinbaseOutput, CoinbaseSpec, template_witness_commitment};
use protocol::template::{BlockTemplate, TemplateRequest};
use serde_json::{Value, json};
use testkit::RegtestPair;

#[test]
fn template_to_accepted_block() {
    let pair = RegtestPair::start().unwrap();
    let (miner, peer) = (pair.node(0), pair.node(1));

    // Mature a coinbase and put a transaction in the mempool, so the template has one.
    miner.generate(101).unwrap();
    let to = peer.new_address().unwrap();
    let txid = miner.call("sendtoaddress", json!([to, 1.5])).unwrap();

    let raw = miner
        .call("getblocktemplate", TemplateRequest::default().to_params())
        .unwrap();
    let template = BlockTemplate::from_json(&raw).unwrap().validate().unwrap();
    let best: Hash256 = miner
        .call("getbestblockhash", json!([]))
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(template.prev_hash, best);
    assert_eq!(template.height, 103);
    assert_eq!(template.transactions.len(), 1);
    assert_eq!(
        template.transactions[0].txid.to_string(),
        txid.as_str().unwrap()
    );
    assert!(!template.is_segwit(), "this node has no segwit");

    // Pay the peer's wallet; the scriptSig carries extranonces as a pool's would.
    let payout = address::parse(&peer.new_address().unwrap(), Network::Regtest).unwrap();
    let coinbase = Coinbase::build(&CoinbaseSpec {
        height: template.height,
        aux: template.coinbase_aux.clone(),
        pool_tag: b"/testkit/".to_vec(),
        extranonce1_len: 4,
        extranonce2_len: 8,
        outputs: vec![CoinbaseOutput {
            value: template.coinbase_value,
            script_pubkey: payout.script_pubkey.clone(),
        }],
        coinbase_value: template.coinbase_value,
        witness_commitment: template_witness_commitment(&template).unwrap(),
    })
    .unwrap();
    let (en1, en2) = ([0, 0, 0, 1], [0u8; 8]);
    let mut solution = Solution {
        extranonce1: &en1,
        extranonce2: &en2,
        version: template.version,
        time: template.curtime,
        nonce: 0,
    };
    let assembled = block::assemble(&template, &coinbase, &solution).unwrap();
    // Mine on the midstate, as every backend does, and stop at the first winning nonce.
    let midstate = assembled.header.midstate();
    let tail = assembled.header.tail();
    solution.nonce = (0..u32::MAX)
        .find(|&n| {
            template
                .target
                .is_met_by(&midstate.sha256d(&tail.with_nonce(n)))
        })
        .unwrap();
    let found = block::assemble(&template, &coinbase, &solution).unwrap();
    assert!(template.target.is_met_by(&found.hash()));

    let reply = miner.call("submitblock", json!([found.to_hex()])).unwrap();
    assert_eq!(reply, Value::Null, "submitblock answered {reply}");
    pair.wait_synced().unwrap();
    assert_eq!(peer.height().unwrap(), 103);
    let best = peer.call("getbestblockhash", json!([])).unwrap();
    assert_eq!(best.as_str().unwrap(), found.hash().to_string());

    // The node stored exactly our bytes, and the coinbase pays the peer.
    let stored = peer
        .call("getblock", json!([found.hash().to_string(), 0]))
        .unwrap();
    assert_eq!(stored.as_str().unwrap(), found.to_hex());
    let balance_before = peer
        .call("getbalance", json!([]))
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        balance_before >= 1.5,
        "the peer got the 1.5 coins sent to it"
    );

    // The same block again is a duplicate, not a new block.
    let again = miner.call("submitblock", json!([found.to_hex()])).unwrap();
    assert_eq!(again, json!("duplicate"));
}

#[test]
fn both_nodes_serve_templates() {
    let pair = RegtestPair::start().unwrap();
    for i in 0..2 {
        let raw = pair.node(i).call("getblocktemplate", json!([])).unwrap();
        let template = BlockTemplate::from_json(&raw).unwrap().validate().unwrap();
        assert_eq!(template.height, 2);
        assert_eq!(template.bits.0, 0x207fffff);
    }
}

#[test]
fn a_missing_binary_names_the_setup_command() {
    let err = testkit::node::check_binary("/nonexistent/bitcoind".into()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("scripts/setup"), "{text}");
    assert!(text.contains("/nonexistent/bitcoind"), "{text}");
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn a_panicking_test_still_stops_the_nodes_and_removes_their_files() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let pair = RegtestPair::start().unwrap();
        *seen.lock().unwrap() = Some((
            pair.dir().to_path_buf(),
            [pair.node(0).pid(), pair.node(1).pid()],
        ));
        panic!("a failing test");
    });
    assert!(result.is_err());
    let (dir, pids) = seen.lock().unwrap().take().unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    for pid in pids {
        // A killed and reaped child has no /proc entry (a zombie would still show one).
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "bitcoind {pid} still running"
        );
    }
}
