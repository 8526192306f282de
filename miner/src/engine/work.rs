//! Work as the engine sees it, and how its (extranonce2, version group, nonce chunk) space
//! is cut into units no two threads share.

use protocol::stratum::merkle_root;
use protocol::{BlockHeader, Hash256, Midstate, Target};

use crate::hash::{MAX_VERSIONS, Prepared};

/// Nonces per unit: 2^22, about a tenth of a second on one fast thread.
pub const CHUNK_BITS: u32 = 22;
/// Nonce chunks per (extranonce2, version group).
pub const CHUNKS: u64 = 1 << (32 - CHUNK_BITS);

/// One job to hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    /// The work source's name for the job (echoed in [`Found`]).
    pub job_id: String,
    /// Version, previous hash, time and bits; the merkle root too when `extranonce` is
    /// `None` (the header is then hashed as given, nonce aside).
    pub header: BlockHeader,
    /// Report hashes at or below this.
    pub target: Target,
    /// Version bits the engine may roll (BIP 310); 0 for none.
    pub version_mask: u32,
    /// The coinbase to roll extranonce2 in, when the source allows it.
    pub extranonce: Option<Extranonce>,
}

/// The coinbase around the extranonces, and the extranonce2 values this engine may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extranonce {
    /// Coinbase bytes before extranonce1.
    pub coinb1: Vec<u8>,
    /// The session's extranonce1.
    pub extranonce1: Vec<u8>,
    /// Coinbase bytes after extranonce2.
    pub coinb2: Vec<u8>,
    /// The job's merkle branch.
    pub merkle_branch: Vec<Hash256>,
    /// Bytes of extranonce2.
    pub size: usize,
    /// First extranonce2 value (as a big-endian integer) this engine uses.
    pub first: u64,
    /// How many consecutive values it may use; devices get disjoint ranges.
    pub count: u64,
}

/// A share or block the engine found, re-checked with the reference sha256d.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The engine worker that found it (an index into [`crate::engine::Engine::stats`]).
    pub worker: usize,
    /// The job it belongs to.
    pub job_id: String,
    /// The extranonce2 bytes (empty when the work had no extranonce).
    pub extranonce2: Vec<u8>,
    /// The full header, nonce and rolled version included.
    pub header: BlockHeader,
    /// Its hash.
    pub hash: Hash256,
}

impl Extranonce {
    /// The extranonce2 bytes of value index `i` of this engine's range.
    pub fn bytes(&self, i: u64) -> Vec<u8> {
        let value = self.first.wrapping_add(i).to_be_bytes();
        let size = self.size.min(8);
        let mut out = vec![0u8; self.size];
        out[self.size - size..].copy_from_slice(&value[8 - size..]);
        out
    }
}

/// Where a unit sits in the work's space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Index into the extranonce2 range (0 when there is no extranonce).
    pub extranonce: u64,
    /// Version group.
    pub group: u64,
    /// First nonce.
    pub nonce: u32,
}

/// The work with its unit layout.
#[derive(Debug)]
pub struct Plan {
    /// The work.
    pub work: Work,
    /// Versions per group.
    pub per_group: usize,
    /// Version groups.
    pub groups: u64,
    /// Extranonce2 values.
    pub extranonces: u64,
    /// Units in all.
    pub units: u64,
}

impl Plan {
    /// Lays out `work`.
    pub fn new(work: Work) -> Plan {
        let bits = work.version_mask.count_ones();
        let versions = 1u64 << bits;
        let per_group = (MAX_VERSIONS as u64).min(versions) as usize;
        let groups = versions / per_group as u64;
        let extranonces = work.extranonce.as_ref().map_or(1, |e| e.count.max(1));
        let units = extranonces.saturating_mul(groups).saturating_mul(CHUNKS);
        Plan {
            work,
            per_group,
            groups,
            extranonces,
            units,
        }
    }

    /// Unit `u`: nonce chunks vary fastest, then version groups, then extranonce2.
    pub fn unit(&self, u: u64) -> Unit {
        let chunk = u % CHUNKS;
        let rest = u / CHUNKS;
        Unit {
            extranonce: rest / self.groups,
            group: rest % self.groups,
            nonce: (chunk << CHUNK_BITS) as u32,
        }
    }

    /// The header (merkle root included) for extranonce index `i`, and its extranonce2.
    pub fn header_for(&self, i: u64) -> (BlockHeader, Vec<u8>) {
        let mut header = self.work.header;
        match &self.work.extranonce {
            None => (header, Vec::new()),
            Some(en) => {
                let en2 = en.bytes(i);
                header.merkle_root = merkle_root(
                    &en.coinb1,
                    &en.extranonce1,
                    &en2,
                    &en.coinb2,
                    &en.merkle_branch,
                );
                (header, en2)
            }
        }
    }

    /// Version `k` of group `group`: the base version with the rolled bits XORed in, so
    /// index 0 is the job's own version.
    pub fn version(&self, group: u64, k: usize) -> u32 {
        let index = group * self.per_group as u64 + k as u64;
        self.work.header.version ^ deposit(index, self.work.version_mask)
    }

    /// The prepared job for extranonce index `i` and version group `group`.
    pub fn prepare(&self, i: u64, group: u64) -> (Prepared, BlockHeader, Vec<u8>) {
        let (header, en2) = self.header_for(i);
        let versions: Vec<(u32, [u32; 8])> = (0..self.per_group)
            .map(|k| {
                let mut h = header;
                h.version = self.version(group, k);
                (h.version, h.midstate().0)
            })
            .collect();
        let target_top = (self.work.target.0[3] >> 32) as u32;
        (
            Prepared::new(&versions, header.tail(), target_top),
            header,
            en2,
        )
    }
}

/// Spreads the low bits of `index` over the set bits of `mask` (a software PDEP).
pub fn deposit(mut index: u64, mut mask: u32) -> u32 {
    let mut out = 0u32;
    while mask != 0 && index != 0 {
        let bit = mask & mask.wrapping_neg();
        if index & 1 == 1 {
            out |= bit;
        }
        index >>= 1;
        mask &= mask - 1;
    }
    out
}

/// What the re-check of one backend hit concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The hash meets the target.
    Meets(Hash256),
    /// It passed the backend's filter honestly but is above the target.
    Above,
    /// The backend reported a nonce whose reference hash fails its own filter: a wrong
    /// result (a bug, or failing hardware).
    HardwareError(Hash256),
}

/// Re-checks a backend hit with the protocol crate's reference sha256d.
pub fn recheck(job: &Prepared, version_index: usize, nonce: u32, target: &Target) -> Verdict {
    let Some(v) = job.versions.get(version_index) else {
        return Verdict::HardwareError(Hash256::ZERO);
    };
    let hash = Midstate(v.midstate).sha256d(&job.tail.with_nonce(nonce));
    let top = u32::from_le_bytes([hash.0[28], hash.0[29], hash.0[30], hash.0[31]]);
    if top > job.target_top {
        Verdict::HardwareError(hash)
    } else if target.is_met_by(&hash) {
        Verdict::Meets(hash)
    } else {
        Verdict::Above
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_spreads_bits() {
        assert_eq!(deposit(0, 0x1fffe000), 0);
        assert_eq!(deposit(1, 0x1fffe000), 0x2000);
        assert_eq!(deposit(3, 0x1fffe000), 0x6000);
        assert_eq!(deposit(0xffff, 0x1fffe000), 0x1fffe000);
        assert_eq!(deposit(0b101, 0b1010_1000), 0b1000_1000);
    }

    #[test]
    fn units_cover_the_space_once() {
        let header = protocol::BlockHeader {
            version: 0x2000_0000,
            prev_hash: Hash256::ZERO,
            merkle_root: Hash256::ZERO,
            time: 0,
            bits: protocol::CompactTarget(0x207fffff),
            nonce: 0,
        };
        let plan = Plan::new(Work {
            job_id: "j".into(),
            header,
            target: Target::DIFF1,
            version_mask: 0x0000_e000,
            extranonce: Some(Extranonce {
                coinb1: vec![1],
                extranonce1: vec![2],
                coinb2: vec![3],
                merkle_branch: vec![],
                size: 4,
                first: 10,
                count: 3,
            }),
        });
        assert_eq!(plan.per_group, 4);
        assert_eq!(plan.groups, 2);
        assert_eq!(plan.units, 3 * 2 * CHUNKS);
        let mut seen = std::collections::HashSet::new();
        for u in 0..plan.units {
            let unit = plan.unit(u);
            assert!(seen.insert((unit.extranonce, unit.group, unit.nonce)));
        }
        // All 8 versions appear once, the job's own first.
        let versions: std::collections::HashSet<u32> = (0..2)
            .flat_map(|g| (0..4).map(move |k| (g, k)))
            .map(|(g, k)| plan.version(g, k))
            .collect();
        assert_eq!(versions.len(), 8);
        assert_eq!(plan.version(0, 0), 0x2000_0000);
        assert!(versions.iter().all(|v| v & !0x0000_e000 == 0x2000_0000));
        // Extranonce2 values are big-endian counters from `first`.
        assert_eq!(plan.header_for(2).1, vec![0, 0, 0, 12]);
    }
}
