//! `GET /api/admin/withholding`: which addresses found fewer blocks than their work
//! should have, and how unlikely that is by chance.
//!
//! A share credited at difficulty `d` while the network's is `D` is a block with
//! probability `d / D`; over a window an address's expected blocks are the sum of that
//! over its shares, and the blocks it found follow (close to) a Poisson law with that
//! mean. A miner that keeps its block solutions to itself (block withholding: it costs the
//! pool every block and the miner only its share of them) finds none while its expected
//! count grows. The report gives, per address, `P(X <= found)`: the chance of finding so
//! few by luck alone; below the threshold (`p`, default 0.001) the address is flagged.
//! Binomial counts (shares at the network difficulty) vary less than a Poisson count of
//! the same mean, so the probability errs on the side of not flagging.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::observe::api::ApiState;
use crate::observe::api::admin::{Refused, authorized};
use crate::observe::api::time::now;
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

/// `GET /api/admin/withholding?hours=24&p=0.001`.
pub async fn withholding(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Refused> {
    authorized(&state, &headers)?;
    let hours: u32 = match q.get("hours") {
        None => 24,
        Some(h) => h
            .parse()
            .ok()
            .filter(|h| (1..=24 * 90).contains(h))
            .ok_or_else(|| Refused::BadRequest(format!("hours must be 1 to 2160, not {h:?}")))?,
    };
    let threshold: f64 = match q.get("p") {
        None => DEFAULT_P,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p: &f64| *p > 0.0 && *p < 1.0)
            .ok_or_else(|| Refused::BadRequest(format!("p must be between 0 and 1, not {p:?}")))?,
    };
    let store = state
        .store
        .as_ref()
        .ok_or_else(|| Refused::Unavailable("the report needs the pool's database".into()))?;
    let since_us = (now() as i64 - i64::from(hours) * 3600) * 1_000_000;
    let work = store.work_by_address(since_us).await?;
    let finders = store.finders_since(since_us).await?;
    let lines: Vec<Value> = report(work, &finders)
        .into_iter()
        .map(|l| {
            json!({
                "address": l.address,
                "shares": l.work.shares,
                "difficulty": l.work.difficulty,
                "expectedBlocks": l.work.expected_blocks,
                "foundBlocks": l.found,
                "probability": l.probability,
                "flagged": l.probability < threshold,
            })
        })
        .collect();
    Ok(Json(json!({
        "hours": hours,
        "threshold": threshold,
        "addresses": lines,
    })))
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
