//! Best share difficulties: for every accepted share, the difficulty its hash reached is
//! compared with the best of its worker, its address and the pool, this round (since the
//! pool's last block) and all time. Home miners watch these more than anything else.
//!
//! This is the in-memory side: since start without a database, and with one, seeded from
//! PostgreSQL's `best_difficulty` at start (the store keeps the figures that survive
//! restarts and that several pool processes share; the API reads them from there). The
//! session path asks it whether a share beat its worker's best, for `client.show_message`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// What a best belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The whole pool.
    Pool,
    /// Every worker of an address.
    Address(String),
    /// One worker of an address (the worker name may be empty).
    Worker(String, String),
}

impl Scope {
    /// The store's (scope, address, worker) columns.
    pub fn columns(&self) -> (&'static str, &str, &str) {
        match self {
            Scope::Pool => ("pool", "", ""),
            Scope::Address(a) => ("address", a, ""),
            Scope::Worker(a, w) => ("worker", a, w),
        }
    }

    /// From the store's columns; `None` for an unknown scope name.
    pub fn from_columns(scope: &str, address: &str, worker: &str) -> Option<Scope> {
        match scope {
            "pool" => Some(Scope::Pool),
            "address" => Some(Scope::Address(address.to_string())),
            "worker" => Some(Scope::Worker(address.to_string(), worker.to_string())),
            _ => None,
        }
    }
}

/// One scope's bests. Times are unix microseconds of the share that set them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Best {
    /// Best this round (0: none since the last block).
    pub round: f64,
    /// When, or 0.
    pub round_us: i64,
    /// Best ever (0: none).
    pub all_time: f64,
    /// When, or 0.
    pub all_time_us: i64,
}

impl Best {
    fn offer(&mut self, difficulty: f64, time_us: i64) -> bool {
        if difficulty > self.round {
            self.round = difficulty;
            self.round_us = time_us;
        }
        let beaten = difficulty > self.all_time;
        if beaten {
            self.all_time = difficulty;
            self.all_time_us = time_us;
        }
        beaten
    }
}

/// The tracker.
#[derive(Debug, Default)]
pub struct Bests {
    by_scope: Mutex<HashMap<Scope, Best>>,
}

/// A share that beat its worker's all-time best: the best before and now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewBest {
    /// The worker's best before this share (above zero: a first share is no news).
    pub previous: f64,
    /// This share's difficulty.
    pub now: f64,
}

/// Which bests a share beat (each `None` when it beat none, or set a first one).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Beaten {
    /// The pool's.
    pub pool: Option<NewBest>,
    /// Its address's.
    pub address: Option<NewBest>,
    /// Its worker's.
    pub worker: Option<NewBest>,
}

impl Bests {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<Scope, Best>) -> R) -> R {
        f(&mut self.by_scope.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// An accepted share whose hash reached `difficulty`; `Some` when it beat the
    /// worker's earlier all-time best.
    pub fn share(
        &self,
        address: &str,
        worker: &str,
        difficulty: f64,
        time_us: i64,
    ) -> Option<NewBest> {
        self.share_all(address, worker, difficulty, time_us).worker
    }

    /// As [`Bests::share`], with the news for the address and the pool too.
    pub fn share_all(&self, address: &str, worker: &str, difficulty: f64, time_us: i64) -> Beaten {
        if !difficulty.is_finite() || difficulty <= 0.0 {
            return Beaten::default();
        }
        // A first best is no news: only a best that beat an earlier one is.
        let offer = |b: &mut Best| {
            let previous = b.all_time;
            (b.offer(difficulty, time_us) && previous > 0.0).then_some(NewBest {
                previous,
                now: difficulty,
            })
        };
        self.with(|m| Beaten {
            pool: offer(m.entry(Scope::Pool).or_default()),
            address: offer(m.entry(Scope::Address(address.to_string())).or_default()),
            worker: offer(
                m.entry(Scope::Worker(address.to_string(), worker.to_string()))
                    .or_default(),
            ),
        })
    }

    /// The pool found a block: a new round begins for every scope.
    pub fn new_round(&self) {
        self.with(|m| {
            for b in m.values_mut() {
                b.round = 0.0;
                b.round_us = 0;
            }
        });
    }

    /// Bests read from the store at start (they win where they are higher).
    pub fn seed(&self, rows: impl IntoIterator<Item = (Scope, Best)>) {
        self.with(|m| {
            for (scope, best) in rows {
                let b = m.entry(scope).or_default();
                if best.all_time > b.all_time {
                    b.all_time = best.all_time;
                    b.all_time_us = best.all_time_us;
                }
                if best.round > b.round {
                    b.round = best.round;
                    b.round_us = best.round_us;
                }
            }
        });
    }

    /// One scope's bests (zeros when it has none).
    pub fn get(&self, scope: &Scope) -> Best {
        self.with(|m| m.get(scope).copied().unwrap_or_default())
    }

    /// The `n` addresses with the highest all-time bests, highest first.
    pub fn top_addresses(&self, n: usize) -> Vec<(String, Best)> {
        let mut all: Vec<(String, Best)> = self.with(|m| {
            m.iter()
                .filter_map(|(s, b)| match s {
                    Scope::Address(a) if b.all_time > 0.0 => Some((a.clone(), *b)),
                    _ => None,
                })
                .collect()
        });
        all.sort_by(|a, b| b.1.all_time.total_cmp(&a.1.all_time).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// The address's own bests and each of its workers', by worker name.
    pub fn of_address(&self, address: &str) -> (Best, Vec<(String, Best)>) {
        self.with(|m| {
            let own = m
                .get(&Scope::Address(address.to_string()))
                .copied()
                .unwrap_or_default();
            let mut workers: Vec<(String, Best)> = m
                .iter()
                .filter_map(|(s, b)| match s {
                    Scope::Worker(a, w) if a == address => Some((w.clone(), *b)),
                    _ => None,
                })
                .collect();
            workers.sort_by(|a, b| a.0.cmp(&b.0));
            (own, workers)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bests_per_worker_address_and_pool_by_round_and_all_time() {
        let b = Bests::default();
        assert_eq!(
            b.share("a", "rig1", 10.0, 1),
            None,
            "a first share is no news"
        );
        assert_eq!(b.share("a", "rig2", 30.0, 2), None);
        assert_eq!(b.share("c", "", 20.0, 3), None);
        assert_eq!(
            b.share("a", "rig1", 15.0, 4),
            Some(NewBest {
                previous: 10.0,
                now: 15.0
            })
        );
        assert_eq!(b.share("a", "rig1", 12.0, 5), None);
        let rig1 = b.get(&Scope::Worker("a".into(), "rig1".into()));
        assert_eq!((rig1.all_time, rig1.all_time_us), (15.0, 4));
        assert_eq!(b.get(&Scope::Address("a".into())).all_time, 30.0);
        assert_eq!(b.get(&Scope::Pool).all_time, 30.0);

        // A block: rounds start over, all-time bests stay.
        b.new_round();
        b.share("c", "", 5.0, 10);
        let pool = b.get(&Scope::Pool);
        assert_eq!((pool.round, pool.round_us, pool.all_time), (5.0, 10, 30.0));
        let (own, workers) = b.of_address("a");
        assert_eq!((own.round, own.all_time), (0.0, 30.0));
        let names: Vec<&str> = workers.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(names, ["rig1", "rig2"]);

        // Figures from the store raise what is lower, never lower what is higher.
        b.seed([
            (
                Scope::Pool,
                Best {
                    round: 1.0,
                    round_us: 1,
                    all_time: 99.0,
                    all_time_us: 7,
                },
            ),
            (
                Scope::Worker("a".into(), "rig2".into()),
                Best {
                    round: 0.0,
                    round_us: 0,
                    all_time: 3.0,
                    all_time_us: 1,
                },
            ),
        ]);
        assert_eq!(b.get(&Scope::Pool).all_time, 99.0);
        assert_eq!(b.get(&Scope::Pool).round, 5.0);
        assert_eq!(
            b.get(&Scope::Worker("a".into(), "rig2".into())).all_time,
            30.0
        );
        // Nonsense never counts.
        assert_eq!(b.share("a", "rig1", f64::NAN, 11), None);
        assert_eq!(b.get(&Scope::Pool).all_time, 99.0);
    }
}
