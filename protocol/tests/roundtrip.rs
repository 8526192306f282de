//! Property tests: encode/decode round trips for headers, compact targets, Stratum messages
//! and the line codec (lines split at arbitrary byte boundaries), and our merkle and target
//! math against rust-bitcoin's.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use bytes::BytesMut;
use proptest::prelude::*;
use protocol::merkle;
use protocol::stratum::{
    Authorize, Message, Method, Notify, Reconnect, SetExtranonce, StratumCodec, StratumError,
    Submit, Subscribe,
};
use protocol::target::hash_difficulty;
use protocol::{BlockHeader, CompactTarget, Difficulty, Hash256, Target};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

fn hash() -> impl Strategy<Value = Hash256> {
    any::<[u8; 32]>().prop_map(Hash256)
}

fn header() -> impl Strategy<Value = BlockHeader> {
    (
        any::<u32>(),
        hash(),
        hash(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(version, prev_hash, merkle_root, time, bits, nonce)| BlockHeader {
                version,
                prev_hash,
                merkle_root,
                time,
                bits: CompactTarget(bits),
                nonce,
            },
        )
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{4e2d}\"\\\\\n]{0,20}"
}

fn difficulty() -> impl Strategy<Value = f64> {
    (1e-9f64..1e12).prop_filter("positive", |d| *d > 0.0)
}

fn id() -> impl Strategy<Value = protocol::stratum::Id> {
    use protocol::stratum::Id;
    prop_oneof![
        any::<u64>().prop_map(Id::from),
        any::<i64>().prop_map(|n| Id::Num(n.into())),
        text().prop_map(Id::Str),
        Just(Id::Null),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        (proptest::option::of(text()), proptest::option::of(text())).prop_map(
            |(user_agent, session_id)| Method::Subscribe(Subscribe {
                user_agent,
                session_id
            })
        ),
        (text(), proptest::option::of(text()))
            .prop_map(|(user, password)| Method::Authorize(Authorize { user, password })),
        (
            text(),
            text(),
            proptest::collection::vec(any::<u8>(), 0..12),
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(any::<u32>())
        )
            .prop_map(
                |(worker, job_id, extranonce2, ntime, nonce, version_bits)| {
                    Method::Submit(Submit {
                        worker,
                        job_id,
                        extranonce2,
                        ntime,
                        nonce,
                        version_bits,
                    })
                }
            ),
        Just(Method::ExtranonceSubscribe),
        difficulty().prop_map(|d| Method::SuggestDifficulty(Difficulty::new(d).unwrap())),
        difficulty().prop_map(|d| Method::SetDifficulty(Difficulty::new(d).unwrap())),
        text().prop_map(Method::GetTransactions),
        (
            text(),
            hash(),
            proptest::collection::vec(any::<u8>(), 0..80),
            proptest::collection::vec(any::<u8>(), 0..80),
            proptest::collection::vec(hash(), 0..12),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(
                |(
                    job_id,
                    prev_hash,
                    coinb1,
                    coinb2,
                    merkle_branch,
                    version,
                    nbits,
                    ntime,
                    clean_jobs,
                )| {
                    Method::Notify(Notify {
                        job_id,
                        prev_hash,
                        coinb1,
                        coinb2,
                        merkle_branch,
                        version,
                        nbits: CompactTarget(nbits),
                        ntime,
                        clean_jobs,
                    })
                }
            ),
        (proptest::collection::vec(any::<u8>(), 0..8), 0usize..=255).prop_map(
            |(extranonce1, extranonce2_size)| Method::SetExtranonce(SetExtranonce {
                extranonce1,
                extranonce2_size
            })
        ),
        any::<u32>().prop_map(Method::SetVersionMask),
        (
            proptest::option::of(text()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(host, port, wait)| Method::Reconnect(Reconnect {
                host,
                port,
                wait
            })),
        text().prop_map(Method::ShowMessage),
        Just(Method::GetVersion),
        (
            "[a-z]{1,8}\\.[a-z_]{1,12}",
            proptest::collection::vec(any::<i32>(), 0..4)
        )
            .prop_filter("not a known method", |(m, _)| {
                !m.starts_with("mining.") && !m.starts_with("client.")
            })
            .prop_map(|(method, params)| Method::Unknown {
                method,
                params: Value::Array(params.into_iter().map(Value::from).collect()),
            }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (id(), method()).prop_map(|(id, method)| Message::Request { id, method }),
        (id(), any::<bool>()).prop_map(|(id, ok)| Message::result(id, Value::Bool(ok))),
        (id(), any::<i64>(), text())
            .prop_map(|(id, code, msg)| Message::error(id, StratumError::new(code, msg))),
    ]
}

proptest! {
    #[test]
    fn header_roundtrip(h in header()) {
        let bytes = h.encode();
        prop_assert_eq!(BlockHeader::decode(&bytes).unwrap(), h);
        prop_assert_eq!(h.midstate().sha256d(&h.tail()), h.hash());
        let theirs: bitcoin::block::Header = bitcoin::consensus::deserialize(&bytes).unwrap();
        prop_assert_eq!(theirs.block_hash().to_string(), h.hash().to_string());
    }

    #[test]
    fn compact_roundtrip(bits in any::<u32>()) {
        let (target, negative, overflow) = CompactTarget(bits).decode();
        if !overflow {
            // Re-encoding a decoded value and decoding again gives the same value.
            let again = CompactTarget::encode(&target, negative);
            let (target2, negative2, _) = again.decode();
            prop_assert_eq!(target2, target);
            prop_assert_eq!(negative2, negative && target != Target::ZERO);
            // rust-bitcoin agrees on non-negative values.
            if !negative {
                let theirs = bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits));
                prop_assert_eq!(theirs.to_be_bytes(), target.to_be_bytes());
            }
        }
    }

    #[test]
    fn target_compact_is_a_lower_bound(bytes in any::<[u8; 32]>()) {
        let target = Target::from_be_bytes(bytes);
        let rounded = target.to_compact().to_target().unwrap();
        prop_assert!(rounded <= target);
        prop_assert_eq!(rounded.to_compact(), target.to_compact());
        let theirs = bitcoin::Target::from_be_bytes(bytes).to_compact_lossy().to_consensus();
        prop_assert_eq!(target.to_compact().0, theirs);
    }

    #[test]
    fn difficulty_target_agree(d in difficulty(), h in hash()) {
        let target = Target::from_difficulty(d).unwrap();
        let back = target.difficulty();
        prop_assert!((back - d).abs() <= d * 1e-9, "{} -> {}", d, back);
        // A hash meets the target exactly when its difficulty is at least d (up to float
        // rounding right at the boundary).
        let hd = hash_difficulty(&h);
        if hd > d * (1.0 + 1e-9) { prop_assert!(target.is_met_by(&h)); }
        if hd < d * (1.0 - 1e-9) { prop_assert!(!target.is_met_by(&h)); }
    }

    #[test]
    fn merkle_matches_rust_bitcoin(hashes in proptest::collection::vec(hash(), 1..50)) {
        use bitcoin::hashes::Hash as _;
        let ours = merkle::root(&hashes);
        let theirs = bitcoin::merkle_tree::calculate_root(
            hashes.iter().map(|h| bitcoin::TxMerkleNode::from_byte_array(h.0)),
        ).unwrap();
        prop_assert_eq!(ours.0, theirs.to_byte_array());
        let branch = merkle::coinbase_branch(&hashes[1..]);
        prop_assert_eq!(merkle::root_from_branch(&hashes[0], &branch), ours);
    }

    #[test]
    fn message_roundtrip(msg in message()) {
        let line = serde_json::to_string(&msg.to_value()).unwrap();
        let back = protocol::stratum::codec::parse_line(line.as_bytes()).unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn codec_roundtrip_at_any_split(msgs in proptest::collection::vec(message(), 1..8), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut codec = StratumCodec::new(1 << 16);
        let mut wire = BytesMut::new();
        for m in &msgs {
            codec.encode(m, &mut wire).unwrap();
        }
        let wire = wire.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut decoder = StratumCodec::new(1 << 16);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        for to in points {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            while let Some(item) = decoder.decode(&mut buf).unwrap() {
                out.push(item.unwrap());
            }
        }
        prop_assert!(decoder.decode_eof(&mut buf).unwrap().is_none());
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn codec_never_panics_on_garbage(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10)) {
        let mut decoder = StratumCodec::new(256);
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            while decoder.decode(&mut buf).unwrap().is_some() {}
            prop_assert!(buf.len() <= 256 + 300);
        }
        let _ = decoder.decode_eof(&mut buf).unwrap();
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = Message::from_value(&v);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "(mining|client)\\.[a-z_.]{0,20}".prop_map(Value::String),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 9, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..9).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("method".to_string()),
                    Just("params".to_string()),
                    Just("result".to_string()),
                    Just("error".to_string()),
                    text()
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
