//! Merkle roots, the Stratum coinbase branch, and the witness root.
//!
//! Bitcoin's tree pairs nodes left to right and, on a level with an odd count, pairs the
//! last node with itself. All hashes here are in internal byte order, which is also the
//! order Stratum's `merkle_branch` carries them in.

use crate::hash::{Hash256, sha256d};

/// sha256d(left || right).
pub fn hash_pair(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&left.0);
    buf[32..].copy_from_slice(&right.0);
    sha256d(&buf)
}

/// The merkle root of a list of txids (coinbase first). An empty list gives zero.
pub fn root(txids: &[Hash256]) -> Hash256 {
    let mut level: Vec<Hash256> = txids.to_vec();
    if level.is_empty() {
        return Hash256::ZERO;
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    level[0]
}

/// The Stratum merkle branch for a coinbase at index 0, given every *other* txid in block
/// order: the sibling of the coinbase's path at each level, bottom up.
///
/// The miner folds its own coinbase hash through these with [`root_from_branch`]; the
/// result equals [`root`] over the full list.
pub fn coinbase_branch(txids_after_coinbase: &[Hash256]) -> Vec<Hash256> {
    let mut branch = Vec::new();
    // `level` holds the level's nodes except the leftmost, whose value depends on the
    // coinbase and is unknown here.
    let mut level: Vec<Hash256> = txids_after_coinbase.to_vec();
    while !level.is_empty() {
        branch.push(level[0]);
        // Pair (unknown, level[0]) goes up as the unknown; pair the rest from level[1].
        let rest = &level[1..];
        level = rest
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    branch
}

/// The merkle root from the coinbase txid and its Stratum branch.
pub fn root_from_branch(coinbase_txid: &Hash256, branch: &[Hash256]) -> Hash256 {
    branch
        .iter()
        .fold(*coinbase_txid, |acc, sibling| hash_pair(&acc, sibling))
}

/// The BIP 141 witness root: the merkle root of the wtxids with the coinbase's wtxid taken
/// as zero.
pub fn witness_root(wtxids_after_coinbase: &[Hash256]) -> Hash256 {
    let mut all = Vec::with_capacity(wtxids_after_coinbase.len() + 1);
    all.push(Hash256::ZERO);
    all.extend_from_slice(wtxids_after_coinbase);
    root(&all)
}

/// The BIP 141 commitment: sha256d(witness root || witness reserved value).
pub fn witness_commitment(witness_root: &Hash256, reserved_value: &[u8; 32]) -> Hash256 {
    hash_pair(witness_root, &Hash256(*reserved_value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash256 {
        s.parse().unwrap()
    }

    /// Block 100000: four transactions, a classic worked example.
    fn block_100000_txids() -> Vec<Hash256> {
        [
            "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
            "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
            "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
            "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
        ]
        .iter()
        .map(|s| h(s))
        .collect()
    }

    #[test]
    fn block_100000_root() {
        let root_100000 = h("f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766");
        let txids = block_100000_txids();
        assert_eq!(root(&txids), root_100000);
        let branch = coinbase_branch(&txids[1..]);
        assert_eq!(branch.len(), 2);
        assert_eq!(branch[0], txids[1]);
        assert_eq!(root_from_branch(&txids[0], &branch), root_100000);
    }

    #[test]
    fn single_transaction_root_is_its_txid() {
        let txid = block_100000_txids()[0];
        assert_eq!(root(&[txid]), txid);
        assert!(coinbase_branch(&[]).is_empty());
        assert_eq!(root_from_branch(&txid, &[]), txid);
        assert_eq!(root(&[]), Hash256::ZERO);
    }

    #[test]
    fn branch_matches_root_for_every_size() {
        // Odd levels duplicate their last node; every size up to 40 exercises both cases.
        for n in 1..40u8 {
            let txids: Vec<Hash256> = (0..n).map(|i| sha256d(&[i])).collect();
            let branch = coinbase_branch(&txids[1..]);
            assert_eq!(
                root_from_branch(&txids[0], &branch),
                root(&txids),
                "n = {n}"
            );
        }
    }
}
