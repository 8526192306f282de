//! Block withholding: which addresses found fewer blocks than their work should have, and
//! how unlikely that is by chance; and the task that watches for it.
//!
//! A share credited at difficulty `d` while the network's is `D` is a block with
//! probability `d / D`; over a window an address's expected blocks are the sum of that
//! over its shares, and the blocks it found follow (close to) a Poisson law with that
//! mean. A miner that keeps its block solutions to itself (block withholding: it costs the
//! pool every block and the miner only its share of them) finds none while its expected
//! count grows. The report gives, per address, `P(X <= found)`: the chance of finding so
//! few by luck alone; below a threshold (`alerts.withholding_p`) the address is flagged.
//! Binomial counts (shares at the network difficulty) vary less than a Poisson count of
//! the same mean, so the probability errs on the side of not flagging.
//!
//! [`watch`] computes the report every `alerts.withholding_check_secs` while this process
//! leads the bookkeeping, keeps its summary for `/metrics`, and sends a `withholding`
//! notification for each address newly flagged.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::observe::notify::Note;
use crate::observe::stats::{PoolStats, WithholdingSummary};
use crate::store::Store;
use crate::store::reads::AddressWork;
use crate::stratum::session::split_user;

/// Flagged below this probability unless the request says otherwise.
pub const DEFAULT_P: f64 = 0.001;

/// `P(X <= k)` for `X` Poisson with mean `lambda` (1 for a mean of zero).
pub fn poisson_cdf(k: u64, lambda: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 1.0;
    }
    // Terms in logs, summed from the largest: exact enough for any k and lambda here.
    let logs: Vec<f64> = (0..=k)
        .scan(0.0f64, |ln_factorial, i| {
            if i > 0 {
                *ln_factorial += (i as f64).ln();
            }
            Some(-lambda + i as f64 * lambda.ln() - *ln_factorial)
        })
        .collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logs.iter().map(|l| (l - top).exp()).sum();
    (top + sum.ln()).exp().min(1.0)
}

/// One address's line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The address.
    pub address: String,
    /// Its work.
    pub work: AddressWork,
    /// Blocks it found.
    pub found: u64,
    /// `P(X <= found)`.
    pub probability: f64,
}

/// The report over `work`, with the finders of the window's blocks; lowest probability
/// first.
pub fn report(work: Vec<AddressWork>, finders: &[String]) -> Vec<Line> {
    let mut found: HashMap<&str, u64> = HashMap::new();
    for finder in finders {
        *found.entry(split_user(finder).0).or_default() += 1;
    }
    let mut lines: Vec<Line> = work
        .into_iter()
        .map(|w| {
            let found = found.get(w.address.as_str()).copied().unwrap_or(0);
            Line {
                address: w.address.clone(),
                probability: poisson_cdf(found, w.expected_blocks),
                found,
                work: w,
            }
        })
        .collect();
    lines.sort_by(|a, b| {
        a.probability
            .total_cmp(&b.probability)
            .then_with(|| a.address.cmp(&b.address))
    });
    lines
}

/// The report of the last `hours` from the database.
pub async fn from_store(
    store: &Store,
    hours: u32,
    now_unix: u64,
) -> Result<Vec<Line>, crate::store::StoreError> {
    let since_us = (now_unix as i64 - i64::from(hours) * 3600) * 1_000_000;
    let work = store.work_by_address(since_us).await?;
    let finders = store.finders_since(since_us).await?;
    Ok(report(work, &finders))
}

/// The addresses of `lines` flagged at `threshold` that `before` did not hold.
pub fn newly_flagged<'l>(
    lines: &'l [Line],
    threshold: f64,
    before: &BTreeSet<String>,
) -> Vec<&'l Line> {
    lines
        .iter()
        .filter(|l| l.probability < threshold && !before.contains(&l.address))
        .collect()
}

/// The watch's settings.
#[derive(Clone, Copy, Debug)]
pub struct WatchSettings {
    /// Flag below this probability.
    pub threshold: f64,
    /// The window, hours.
    pub hours: u32,
    /// Time between reports.
    pub every: Duration,
}

/// Reports every `settings.every` while `leading`; see the module docs.
pub async fn watch(
    store: Store,
    stats: Arc<PoolStats>,
    leading: Arc<AtomicBool>,
    settings: WatchSettings,
    cancel: CancellationToken,
) {
    let mut flagged: BTreeSet<String> = BTreeSet::new();
    let mut every = tokio::time::interval(settings.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        if !leading.load(Ordering::Relaxed) {
            continue;
        }
        let now = u64::from(crate::clock::unix_now());
        let lines = match from_store(&store, settings.hours, now).await {
            Ok(lines) => lines,
            Err(e) => {
                warn!(error = %e, "withholding report: the database did not answer");
                continue;
            }
        };
        for line in newly_flagged(&lines, settings.threshold, &flagged) {
            warn!(
                address = %line.address,
                expected = line.work.expected_blocks,
                found = line.found,
                probability = line.probability,
                "possible block withholding: far fewer blocks than this address's work should have found"
            );
            stats.notify.send(Note::Withholding {
                address: line.address.clone(),
                expected: line.work.expected_blocks,
                found: line.found,
                probability: line.probability,
            });
        }
        flagged = lines
            .iter()
            .filter(|l| l.probability < settings.threshold)
            .map(|l| l.address.clone())
            .collect();
        stats.set_withholding(WithholdingSummary {
            flagged: flagged.len(),
            lowest: lines.first().map_or(1.0, |l| l.probability),
            addresses: lines.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
    }

    #[test]
    fn the_poisson_cdf_matches_its_closed_forms() {
        // P(X = 0) = e^-lambda; P(X <= 1) = e^-lambda (1 + lambda).
        for lambda in [0.1, 1.0, 7.5, 30.0] {
            assert!(close(poisson_cdf(0, lambda), (-lambda).exp()));
            assert!(close(
                poisson_cdf(1, lambda),
                (-lambda).exp() * (1.0 + lambda)
            ));
        }
        assert_eq!(poisson_cdf(3, 0.0), 1.0);
        // A known value: P(X <= 10 | lambda = 10) = 0.583040...
        assert!((poisson_cdf(10, 10.0) - 0.583_039_750_4).abs() < 1e-9);
        // Far in the tail and far past the mean, without overflow.
        assert!(close(poisson_cdf(0, 500.0), (-500.0f64).exp()));
        assert!(close(poisson_cdf(5000, 100.0), 1.0));
    }

    fn work(address: &str, expected: f64) -> AddressWork {
        AddressWork {
            address: address.into(),
            shares: 100,
            difficulty: 1.0,
            expected_blocks: expected,
        }
    }

    #[test]
    fn the_note_names_the_address_and_the_shortfall() {
        let note = Note::Withholding {
            address: "mp6n".into(),
            expected: 25.77,
            found: 0,
            probability: 6.4e-12,
        };
        assert!(crate::config::NOTIFY_EVENTS.contains(&note.name()));
        assert_eq!(
            note.text("pool", "BTC"),
            "[pool] Possible block withholding: mp6n found 0 blocks where its work should have found 25.8 (chance 6.4e-12)"
        );
        assert_eq!(note.data()["foundBlocks"], serde_json::json!(0));
    }

    #[test]
    fn only_addresses_newly_below_the_threshold_are_told() {
        let lines = report(vec![work("a", 30.0), work("b", 30.0), work("c", 0.5)], &[]);
        let before: BTreeSet<String> = ["a".to_string()].into();
        let new: Vec<&str> = newly_flagged(&lines, 0.001, &before)
            .iter()
            .map(|l| l.address.as_str())
            .collect();
        assert_eq!(new, vec!["b"]);
    }

    #[test]
    fn a_miner_that_finds_nothing_for_many_expected_blocks_comes_first() {
        let finders: Vec<String> = ["honest.rig1", "honest.rig2", "honest", "lucky_rig"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lines = report(
            vec![
                work("honest", 3.0),
                work("lucky", 0.2),
                work("withholder", 25.0),
            ],
            &finders,
        );
        assert_eq!(lines[0].address, "withholder");
        assert_eq!(lines[0].found, 0);
        assert!(lines[0].probability < 1e-10);
        let honest = lines.iter().find(|l| l.address == "honest").unwrap();
        assert_eq!(honest.found, 3);
        assert!(honest.probability > 0.5);
        let lucky = lines.iter().find(|l| l.address == "lucky").unwrap();
        assert_eq!(lucky.found, 1);
        assert!(close(lucky.probability, (-0.2f64).exp() * 1.2));
    }
}
