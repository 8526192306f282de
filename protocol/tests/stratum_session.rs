//! The captured ckpool <-> cpuminer 2.5.1 session (tests/data/stratum-session-ckpool-cpuminer.json):
//! every line decodes and re-encodes, and the two accepted shares rebuild, byte for byte, the
//! headers and blocks the node stored for them.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use protocol::block;
use protocol::stratum::work::coinbase_tx;
use protocol::stratum::{Message, Method, Notify, Submit, SubscribeResult, share_header};
use protocol::target::hash_difficulty;
use serde_json::Value;

struct Capture {
    lines: Vec<(String, String)>,
    blocks: Vec<Value>,
}

fn capture() -> Capture {
    let text = include_str!("data/stratum-session-ckpool-cpuminer.json");
    let v: Value = serde_json::from_str(text).unwrap();
    let lines = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["dir"].as_str().unwrap().to_string(),
                l["line"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Capture {
        lines,
        blocks: v["blocks"].as_array().unwrap().clone(),
    }
}

fn parse(line: &str) -> Message {
    protocol::stratum::codec::parse_line(line.as_bytes()).unwrap()
}

#[test]
fn every_line_decodes_and_reencodes_to_the_same_message() {
    for (dir, line) in capture().lines {
        let msg = parse(&line);
        let again = Message::from_value(&msg.to_value()).unwrap();
        assert_eq!(again, msg, "{dir}: {line}");
        // Same JSON content as captured, field for field (key order and spacing aside),
        // except that we always write "params" and "error".
        let ours = msg.to_value();
        let theirs: Value = serde_json::from_str(&line).unwrap();
        for (key, value) in theirs.as_object().unwrap() {
            assert_eq!(&ours[key], value, "{dir}: field {key} of {line}");
        }
    }
}

#[test]
fn shares_rebuild_the_stored_headers_and_blocks() {
    let cap = capture();
    let mut extranonce1 = None;
    let mut difficulty = None;
    let mut jobs: Vec<Notify> = Vec::new();
    let mut shares: Vec<(Notify, Submit)> = Vec::new();
    for (_, line) in &cap.lines {
        match parse(line) {
            Message::Response(r) if r.id == 1u64.into() => {
                let sub = SubscribeResult::from_value(&r.result).unwrap();
                assert_eq!(sub.extranonce2_size, 8);
                extranonce1 = Some(sub.extranonce1);
            }
            Message::Request {
                method: Method::SetDifficulty(d),
                ..
            } => difficulty = Some(d),
            Message::Request {
                method: Method::Notify(n),
                ..
            } => jobs.push(n),
            Message::Request {
                method: Method::Submit(s),
                ..
            } => {
                let job = jobs.iter().find(|j| j.job_id == s.job_id).unwrap().clone();
                shares.push((job, s));
            }
            _ => {}
        }
    }
    let extranonce1 = extranonce1.unwrap();
    assert_eq!(hex::encode(&extranonce1), "6366026b");
    let share_target = difficulty.unwrap().target();
    assert_eq!(shares.len(), cap.blocks.len());

    for ((job, submit), stored) in shares.iter().zip(&cap.blocks) {
        let header = share_header(
            job,
            &extranonce1,
            &submit.extranonce2,
            submit.version_bits.unwrap_or(job.version),
            submit.ntime,
            submit.nonce,
        );
        assert_eq!(
            hex::encode(header.encode()),
            stored["header_hex"].as_str().unwrap()
        );
        let hash = header.hash();
        assert_eq!(hash.to_string(), stored["hash"].as_str().unwrap());
        // The reference midstate path agrees with the plain hash.
        assert_eq!(header.midstate().sha256d(&header.tail()), hash);
        // The share met the session difficulty, and (regtest) the network target too.
        assert!(share_target.is_met_by(&hash));
        assert!(hash_difficulty(&hash) >= 0.01);
        assert!(job.nbits.to_target().unwrap().is_met_by(&hash));

        // The full block: header, one transaction, the coinbase (no witness on this node).
        let coinbase = coinbase_tx(job, &extranonce1, &submit.extranonce2);
        let txs: [&[u8]; 0] = [];
        let block = block::serialize(&header, &coinbase, &txs);
        assert_eq!(hex::encode(&block), stored["block_hex"].as_str().unwrap());
    }
}
