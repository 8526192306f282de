//! Every backend reports exactly the nonces the protocol crate's reference sha256d says pass
//! the last-word filter, over random headers, targets (difficulty above and below 1),
//! version-rolled jobs, and the ends of the nonce space.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use miner::hash::{Backend, MAX_VERSIONS, Prepared};
use proptest::prelude::*;
use protocol::{BlockHeader, CompactTarget, Hash256, Midstate};

fn reference_hits(job: &Prepared, start: u32, count: u32) -> Vec<(usize, u32)> {
    let mut hits = Vec::new();
    for i in 0..count {
        let nonce = start.wrapping_add(i);
        for (vi, v) in job.versions.iter().enumerate() {
            let hash = Midstate(v.midstate).sha256d(&job.tail.with_nonce(nonce));
            let top = u32::from_le_bytes([hash.0[28], hash.0[29], hash.0[30], hash.0[31]]);
            if top <= job.target_top {
                hits.push((vi, nonce));
            }
        }
    }
    hits.sort_unstable();
    hits
}

fn backend_hits(backend: Backend, job: &Prepared, start: u32, count: u32) -> Vec<(usize, u32)> {
    let mut hits = Vec::new();
    backend.scan(job, start, count, &mut |vi, n| hits.push((vi, n)));
    hits.sort_unstable();
    hits
}

fn job(header: &BlockHeader, versions: usize, target_top: u32) -> Prepared {
    let list: Vec<(u32, [u32; 8])> = (0..versions as u32)
        .map(|i| {
            let mut h = *header;
            h.version ^= i << 13;
            (h.version, h.midstate().0)
        })
        .collect();
    Prepared::new(&list, header.tail(), target_top)
}

fn header_strategy() -> impl Strategy<Value = BlockHeader> {
    (
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(version, prev, root, time, bits)| BlockHeader {
            version,
            prev_hash: Hash256(prev),
            merkle_root: Hash256(root),
            time,
            bits: CompactTarget(bits),
            nonce: 0,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn backends_match_the_reference(
        header in header_strategy(),
        versions in 1..=MAX_VERSIONS,
        // Loose filters so that hits happen: difficulty far below 1, and a tiny filter.
        target_top in prop_oneof![Just(0u32), 0u32..0x0100_0000, 0x0100_0000u32..=u32::MAX],
        start_block in any::<u32>(),
    ) {
        let job = job(&header, versions, target_top);
        // A 64-nonce window; the start is aligned to the widest backend.
        let start = start_block & !63;
        let expected = reference_hits(&job, start, 64);
        for backend in Backend::supported() {
            prop_assert_eq!(&backend_hits(backend, &job, start, 64), &expected, "{}", backend);
        }
    }
}

#[test]
fn nonce_space_ends_and_exact_boundaries() {
    let header = BlockHeader::decode(&hex::decode("0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695").unwrap()).unwrap();
    for versions in [1, MAX_VERSIONS] {
        // The first and the last 64 nonces of the space, with a filter that passes ~1/4.
        for start in [0u32, u32::MAX - 63] {
            let job = job(&header, versions, 0x3fff_ffff);
            let expected = reference_hits(&job, start, 64);
            assert!(!expected.is_empty());
            for backend in Backend::supported() {
                assert_eq!(
                    backend_hits(backend, &job, start, 64),
                    expected,
                    "{backend} at {start:#x}"
                );
            }
        }
        // A filter exactly at a hash's top word passes it; one below does not.
        let probe = job(&header, versions, 0);
        let hash = Midstate(probe.versions[0].midstate).sha256d(&probe.tail.with_nonce(7));
        let top = u32::from_le_bytes([hash.0[28], hash.0[29], hash.0[30], hash.0[31]]);
        for (limit, should_hit) in [(top, true), (top - 1, false)] {
            let job = job(&header, versions, limit);
            for backend in Backend::supported() {
                let hits = backend_hits(backend, &job, 0, 64);
                assert_eq!(
                    hits.contains(&(0, 7)),
                    should_hit,
                    "{backend} limit {limit:#x}"
                );
            }
        }
    }
    // The real block's winning nonce passes the difficulty-1 filter on every backend.
    let job = job(&header, 1, 0);
    let win = header.nonce & !63;
    for backend in Backend::supported() {
        assert!(
            backend_hits(backend, &job, win, 64).contains(&(0, header.nonce)),
            "{backend}"
        );
    }
}
