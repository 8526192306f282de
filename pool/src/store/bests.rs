//! Best share difficulties in PostgreSQL (`best_difficulty`, migration 0002): per worker,
//! address and pool, all time and this round, where a round is the time since the newest
//! `blocks.found_at` (so every pool process on the database agrees, and nobody resets
//! rows when a block is found).
//!
//! Raising them on every batch cost the pool 40% of its share capacity when each batch
//! upserted a row per worker, address and the pool (a measurement, docs/benchmarks.md).
//! A best is a record, and records are rare: so the store remembers what it knows the
//! database holds ([`Known`], from the rows its own committed upserts returned), folds a
//! batch into one candidate per scope in Rust, and upserts only the candidates that beat
//! what it knows. Knowing too little (a cold start, another process raised a best) only
//! sends a row that changes nothing; it never knows too much, because it learns from
//! committed rows only and the database's bests never go down within a round.

use std::collections::HashMap;

use crate::observe::best::{Best, Scope};
use crate::store::{ShareRow, Store, StoreError};

/// A scope as the table keys it: (scope, address, worker).
type Key = (&'static str, String, String);

/// The bests this process knows the database holds.
#[derive(Debug, Default)]
pub struct Known {
    /// The newest block's time these round figures belong to (unix µs; None: no block).
    last_block_us: Option<i64>,
    /// (all time, this round) per scope.
    by_key: HashMap<Key, (f64, f64)>,
}

/// One scope's best shares in a batch: overall, and after the newest block.
#[derive(Clone, Debug, Default, PartialEq)]
struct Candidate {
    all_time: f64,
    all_time_us: i64,
    round: f64,
    round_us: i64,
}

impl Candidate {
    fn offer(&mut self, d: f64, time_us: i64, in_round: bool) {
        // The earliest share of the highest difficulty set it.
        let better = |best: f64, at: i64| d > best || (d == best && time_us < at);
        if better(self.all_time, self.all_time_us) {
            self.all_time = d;
            self.all_time_us = time_us;
        }
        if in_round && better(self.round, self.round_us) {
            self.round = d;
            self.round_us = time_us;
        }
    }
}

/// A batch folded into one candidate per scope, keeping those that beat what is known.
fn candidates(
    shares: &[&ShareRow],
    last_block_us: Option<i64>,
    known: &Known,
) -> Vec<(Key, Candidate)> {
    // Folded by borrowed keys: owned ones are made once per scope, not three per share.
    let mut by_key: HashMap<(&'static str, &str, &str), Candidate> = HashMap::new();
    for s in shares {
        let d = s.share_difficulty;
        if !d.is_finite() || d <= 0.0 {
            continue;
        }
        let in_round = last_block_us.is_none_or(|b| s.time_us > b);
        for key in [
            ("worker", s.address.as_str(), s.worker.as_str()),
            ("address", s.address.as_str(), ""),
            ("pool", "", ""),
        ] {
            by_key.entry(key).or_default().offer(d, s.time_us, in_round);
        }
    }
    let mut out: Vec<(Key, Candidate)> = by_key
        .into_iter()
        .map(|((scope, address, worker), c)| ((scope, address.to_string(), worker.to_string()), c))
        .filter(|(key, c)| match known.by_key.get(key) {
            None => true,
            Some(&(all_time, round)) => c.all_time > all_time || c.round > round,
        })
        .collect();
    // A fixed order: two processes upserting the same rows take their locks alike.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Rows the upsert returned: the database's figures after it, and the block they count from.
#[derive(Debug, Default)]
pub struct Raised {
    last_block_us: Option<i64>,
    rows: Vec<(Key, f64, f64)>,
}

/// A batch's candidates, and the newest block they were judged against.
#[derive(Debug, Default)]
pub(super) struct Todo {
    last_block_us: Option<i64>,
    candidates: Vec<(Key, Candidate)>,
}

impl Todo {
    /// Whether there is nothing to raise.
    pub(super) fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The newest block (unix µs) the candidates were judged against.
    pub(super) fn last_block_us(&self) -> Option<i64> {
        self.last_block_us
    }
}

impl Store {
    /// The batch's scopes that may beat what the database holds, judged against the newest
    /// block at `last_block_us` (a different block than the one known: every round figure
    /// known is forgotten, the round started over).
    pub(super) fn best_candidates(&self, shares: &[&ShareRow], last_block_us: Option<i64>) -> Todo {
        let mut known = self.bests.lock().unwrap_or_else(|p| p.into_inner());
        if known.last_block_us != last_block_us {
            // A block (ours or another process's): every round starts over.
            known.last_block_us = last_block_us;
            for v in known.by_key.values_mut() {
                v.1 = 0.0;
            }
        }
        Todo {
            last_block_us,
            candidates: candidates(shares, last_block_us, &known),
        }
    }

    /// The newest block's time as this process last saw it (unix µs; None before any).
    pub(super) fn known_last_block(&self) -> Option<i64> {
        self.bests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_block_us
    }

    /// Raises the candidates' bests inside the batch's transaction (blocks and shares are
    /// already written in it); what the database holds afterwards is returned, to be
    /// learnt once the transaction commits ([`Store::known_bests`]).
    pub(super) async fn raise_bests(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        todo: Todo,
    ) -> Result<Raised, StoreError> {
        let Todo {
            last_block_us,
            candidates: todo,
        } = todo;
        if todo.is_empty() {
            return Ok(Raised {
                last_block_us,
                rows: Vec::new(),
            });
        }
        let column = |f: fn(&(Key, Candidate)) -> String| todo.iter().map(f).collect::<Vec<_>>();
        let rows: Vec<(String, String, String, f64, f64, bool)> = sqlx::query_as(
            "WITH last AS (SELECT coalesce(max(found_at), '-infinity') AS at FROM blocks)
             INSERT INTO best_difficulty AS b
                 (scope, address, worker, all_time, all_time_at, round, round_at)
             SELECT s, a, w, at, micros_to_ts(at_us),
                    r, CASE WHEN r > 0 THEN micros_to_ts(r_us) ELSE '-infinity' END
             FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::bigint[],
                         $6::float8[], $7::bigint[]) AS x(s, a, w, at, at_us, r, r_us)
             ON CONFLICT (scope, address, worker) DO UPDATE SET
                 all_time = greatest(b.all_time, EXCLUDED.all_time),
                 all_time_at = CASE WHEN EXCLUDED.all_time > b.all_time
                                    THEN EXCLUDED.all_time_at ELSE b.all_time_at END,
                 round = CASE WHEN EXCLUDED.round > 0
                                   AND (b.round_at <= (SELECT at FROM last) OR EXCLUDED.round > b.round)
                              THEN EXCLUDED.round ELSE b.round END,
                 round_at = CASE WHEN EXCLUDED.round > 0
                                   AND (b.round_at <= (SELECT at FROM last) OR EXCLUDED.round > b.round)
                              THEN EXCLUDED.round_at ELSE b.round_at END
             RETURNING scope, address, worker, all_time, round,
                       round_at > (SELECT at FROM last)",
        )
        .bind(column(|t| t.0.0.to_string()))
        .bind(column(|t| t.0.1.clone()))
        .bind(column(|t| t.0.2.clone()))
        .bind(todo.iter().map(|t| t.1.all_time).collect::<Vec<_>>())
        .bind(todo.iter().map(|t| t.1.all_time_us).collect::<Vec<_>>())
        .bind(todo.iter().map(|t| t.1.round).collect::<Vec<_>>())
        .bind(todo.iter().map(|t| t.1.round_us).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await?;
        Ok(Raised {
            last_block_us,
            rows: rows
                .into_iter()
                .filter_map(|(scope, a, w, all_time, round, current)| {
                    let scope = match scope.as_str() {
                        "worker" => "worker",
                        "address" => "address",
                        "pool" => "pool",
                        _ => return None,
                    };
                    Some(((scope, a, w), all_time, if current { round } else { 0.0 }))
                })
                .collect(),
        })
    }

    /// Learns the figures of a committed upsert.
    pub(super) fn known_bests(&self, raised: Raised) {
        let mut known = self.bests.lock().unwrap_or_else(|p| p.into_inner());
        if known.last_block_us != raised.last_block_us {
            // A block came between: the next batch reads the block anew.
            return;
        }
        for (key, all_time, round) in raised.rows {
            let entry = known.by_key.entry(key).or_insert((0.0, 0.0));
            entry.0 = entry.0.max(all_time);
            entry.1 = entry.1.max(round);
        }
    }

    /// Every stored best (round bests of an earlier round read as zero), for seeding the
    /// in-memory tracker at start.
    pub async fn all_bests(&self) -> Result<Vec<(Scope, Best)>, StoreError> {
        self.bests_where("$1::text = ''", "").await
    }

    /// The `limit` addresses with the highest all-time bests, highest first: (address,
    /// best, unix microseconds it was reached).
    pub async fn top_address_bests(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, f64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT address, all_time, ts_to_micros(all_time_at) FROM best_difficulty
             WHERE scope = 'address' ORDER BY all_time DESC, address LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.db())
        .await?)
    }

    /// The pool's bests, an address's and its workers' (zeros where there are none).
    pub async fn bests_of(&self, address: &str) -> Result<Vec<(Scope, Best)>, StoreError> {
        self.bests_where("scope = 'pool' OR address = $1::text", address)
            .await
    }

    async fn bests_where(
        &self,
        filter: &str,
        address: &str,
    ) -> Result<Vec<(Scope, Best)>, StoreError> {
        let rows: Vec<(String, String, String, f64, i64, f64, i64)> = sqlx::query_as(&format!(
            "WITH last AS (SELECT coalesce(max(found_at), '-infinity') AS at FROM blocks)
             SELECT scope, address, worker, all_time, ts_to_micros(all_time_at),
                    CASE WHEN round_at > last.at THEN round ELSE 0 END,
                    CASE WHEN round_at > last.at THEN ts_to_micros(round_at) ELSE 0 END
             FROM best_difficulty, last WHERE {filter}"
        ))
        .bind(address)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(scope, a, w, all_time, all_time_us, round, round_us)| {
                Some((
                    Scope::from_columns(&scope, &a, &w)?,
                    Best {
                        round,
                        round_us,
                        all_time,
                        all_time_us,
                    },
                ))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time_us: i64, address: &str, worker: &str, d: f64) -> ShareRow {
        ShareRow {
            time_us,
            uid: time_us,
            address: address.into(),
            worker: worker.into(),
            difficulty: 1.0,
            share_difficulty: d,
            network_difficulty: 1000.0,
            height: 1,
            instance: 0,
        }
    }

    #[test]
    fn a_batch_folds_into_the_candidates_that_beat_what_is_known() {
        let shares = [
            row(10, "a", "r1", 5.0),
            row(11, "a", "r1", 7.0),
            row(12, "a", "r2", 3.0),
            row(13, "b", "", 7.0),
            row(14, "a", "r1", 7.0),
        ];
        let refs: Vec<&ShareRow> = shares.iter().collect();
        // The newest block at 11: only shares after it count for the round.
        let got = candidates(&refs, Some(11), &Known::default());
        let find = |s: &'static str, a: &str, w: &str| {
            got.iter()
                .find(|(k, _)| *k == (s, a.to_string(), w.to_string()))
                .map(|(_, c)| c.clone())
        };
        assert_eq!(
            got.len(),
            3 + 2 + 1,
            "two workers of a, one of b, two addresses, the pool"
        );
        let r1 = find("worker", "a", "r1").unwrap();
        assert_eq!(
            (r1.all_time, r1.all_time_us, r1.round, r1.round_us),
            (7.0, 11, 7.0, 14)
        );
        let pool = find("pool", "", "").unwrap();
        assert_eq!(
            (pool.all_time, pool.all_time_us, pool.round, pool.round_us),
            (7.0, 11, 7.0, 13)
        );

        // What the database is known to hold filters the rest out.
        let mut known = Known {
            last_block_us: Some(11),
            by_key: HashMap::new(),
        };
        for (k, c) in &got {
            known.by_key.insert(k.clone(), (c.all_time, c.round));
        }
        assert!(candidates(&refs, Some(11), &known).is_empty());
        let better = [row(20, "a", "r2", 4.0)];
        let refs: Vec<&ShareRow> = better.iter().collect();
        let got = candidates(&refs, Some(11), &known);
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.0).collect();
        assert_eq!(keys, ["worker"], "only r2's own best moved");
    }
}
