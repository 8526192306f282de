//! Extranonce1 allocation: 4 bytes, unique among the live sessions of this process, with
//! the first byte fixed to the instance id so that pool processes sharing a database (and
//! a payout address) never hand out the same coinbase space.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The allocator. Cheap to clone; the lock is held for a hash-set operation only.
#[derive(Clone, Debug)]
pub struct Extranonces {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    prefix: u8,
    next: u32,
    live: HashSet<u32>,
}

/// One allocated extranonce1, released when dropped.
#[derive(Debug)]
pub struct Lease {
    value: [u8; 4],
    pool: Extranonces,
}

impl Lease {
    /// The extranonce1 bytes.
    pub fn bytes(&self) -> [u8; 4] {
        self.value
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool
            .lock()
            .live
            .remove(&u32::from_be_bytes(self.value));
    }
}

impl Extranonces {
    /// An allocator for instance `prefix` (2^24 values), starting at a random point: in a
    /// rolling restart the old and the new process share the prefix for a few seconds, and
    /// both counting from zero would hand two miners the same coinbase space.
    pub fn new(prefix: u8) -> Extranonces {
        Extranonces {
            inner: Arc::new(Mutex::new(Inner {
                prefix,
                next: crate::clock::random_u64() as u32,
                live: HashSet::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh extranonce1, or `None` when all 2^24 are in use.
    pub fn allocate(&self) -> Option<Lease> {
        let mut inner = self.lock();
        let base = u32::from(inner.prefix) << 24;
        for _ in 0..(1u32 << 24) {
            let candidate = base | (inner.next & 0x00ff_ffff);
            inner.next = inner.next.wrapping_add(1);
            if inner.live.insert(candidate) {
                return Some(Lease {
                    value: candidate.to_be_bytes(),
                    pool: self.clone(),
                });
            }
        }
        None
    }

    /// Claims a specific value (a miner resuming its session) when it is ours and free.
    pub fn claim(&self, value: [u8; 4]) -> Option<Lease> {
        let mut inner = self.lock();
        if value[0] != inner.prefix || !inner.live.insert(u32::from_be_bytes(value)) {
            return None;
        }
        Some(Lease {
            value,
            pool: self.clone(),
        })
    }

    /// Values in use.
    pub fn live(&self) -> usize {
        self.lock().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_prefixed_released_and_claimable() {
        let pool = Extranonces::new(7);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_ne!(a.bytes(), b.bytes());
        assert_eq!(a.bytes()[0], 7);
        assert_eq!(pool.live(), 2);
        let value = a.bytes();
        assert!(pool.claim(value).is_none(), "in use");
        drop(a);
        assert_eq!(pool.live(), 1);
        let again = pool.claim(value).unwrap();
        assert_eq!(again.bytes(), value);
        assert!(
            pool.claim([8, 0, 0, 1]).is_none(),
            "another instance's space"
        );
        let other = Extranonces::new(8);
        assert_ne!(other.allocate().unwrap().bytes()[0], 7);
    }
}
