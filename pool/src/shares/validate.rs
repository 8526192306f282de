//! Share validation as a pure function of the job, the session's state and the submit.
//!
//! Every outcome has a reason; rejects carry the Stratum error code miners expect
//! (ckpool's and Miningcore's numbering: 21 job not found or stale, 22 duplicate, 23 low
//! difficulty, 20 for the rest) and a short label the statistics count by.

use std::collections::HashSet;

use protocol::coinbase::Coinbase;
use protocol::stratum::merkle_root;
use protocol::stratum::{StratumError, Submit};
use protocol::target::format_difficulty_pair;
use protocol::{BlockHeader, Difficulty, Hash256, Target};

use crate::chain::jobs::Job;

/// Why a share was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Reject {
    /// No job with that id was sent on this connection (or it is long gone).
    UnknownJob,
    /// The job is for a block that is no longer the tip.
    Stale,
    /// extranonce2 has the wrong length.
    Extranonce2Size {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// ntime before the template's mintime or too far ahead of the pool's clock.
    NtimeOutOfRange {
        /// The share's ntime.
        ntime: u32,
        /// Earliest accepted.
        min: u32,
        /// Latest accepted.
        max: u32,
    },
    /// Version bits outside the negotiated mask (or rolling without negotiating it).
    VersionBits {
        /// The bits sent.
        bits: u32,
        /// The mask granted.
        mask: u32,
    },
    /// The same share was accepted before.
    Duplicate,
    /// The hash does not meet the session's difficulty.
    LowDifficulty {
        /// The share's difficulty.
        got: Difficulty,
        /// The difficulty required.
        want: Difficulty,
    },
    /// The worker was not authorized on this connection.
    Unauthorized,
    /// The connection never subscribed.
    NotSubscribed,
}

impl Reject {
    /// The label rejects are counted by.
    pub fn label(&self) -> &'static str {
        match self {
            Reject::UnknownJob => "job-not-found",
            Reject::Stale => "stale",
            Reject::Extranonce2Size { .. } => "bad-extranonce2-size",
            Reject::NtimeOutOfRange { .. } => "ntime-out-of-range",
            Reject::VersionBits { .. } => "bad-version-bits",
            Reject::Duplicate => "duplicate",
            Reject::LowDifficulty { .. } => "low-difficulty",
            Reject::Unauthorized => "unauthorized-worker",
            Reject::NotSubscribed => "not-subscribed",
        }
    }

    /// Whether the miner could not have avoided it (a block changed under it): such rejects
    /// do not count towards a ban.
    pub fn is_honest(&self) -> bool {
        matches!(self, Reject::Stale)
    }

    /// The error triple sent to the miner.
    pub fn to_error(&self) -> StratumError {
        match self {
            Reject::UnknownJob => StratumError::new(StratumError::JOB_NOT_FOUND, "Job not found"),
            Reject::Stale => StratumError::new(StratumError::JOB_NOT_FOUND, "Stale share"),
            Reject::Extranonce2Size { got, want } => StratumError::new(
                StratumError::OTHER,
                format!("Incorrect size of extranonce2: {got} bytes, want {want}"),
            ),
            Reject::NtimeOutOfRange { ntime, min, max } => StratumError::new(
                StratumError::OTHER,
                format!("ntime out of range: {ntime} not in [{min}, {max}]"),
            ),
            Reject::VersionBits { bits, mask } => StratumError::new(
                StratumError::OTHER,
                format!("Version bits {bits:08x} outside the mask {mask:08x}"),
            ),
            Reject::Duplicate => {
                StratumError::new(StratumError::DUPLICATE_SHARE, "Duplicate share")
            }
            Reject::LowDifficulty { got, want } => {
                let (got, want) = format_difficulty_pair(got.get(), want.get());
                StratumError::new(
                    StratumError::LOW_DIFFICULTY,
                    format!("Low difficulty share ({got} < {want})"),
                )
            }
            Reject::Unauthorized => {
                StratumError::new(StratumError::UNAUTHORIZED, "Unauthorized worker")
            }
            Reject::NotSubscribed => {
                StratumError::new(StratumError::NOT_SUBSCRIBED, "Not subscribed")
            }
        }
    }
}

/// What the check needs from the session and the clock.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The job the share names.
    pub job: &'a Job,
    /// The coinbase sent with it on this connection.
    pub coinbase: &'a Coinbase,
    /// This connection's extranonce1.
    pub extranonce1: &'a [u8],
    /// The version-rolling mask granted (0 when none).
    pub version_mask: u32,
    /// The difficulty in effect for this job on this connection.
    pub difficulty: Difficulty,
    /// Its target.
    pub target: Target,
    /// The pool's clock (unix seconds).
    pub now: u32,
    /// The latest ntime accepted, relative to `now`.
    pub max_ntime_ahead: u32,
}

/// What makes two shares the same: the same header inputs. Version bits are part of it,
/// since a rolled version is a different header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShareKey {
    extranonce2: Vec<u8>,
    ntime: u32,
    nonce: u32,
    version: u32,
}

/// An accepted share.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// The header the miner hashed.
    pub header: BlockHeader,
    /// Its hash.
    pub hash: Hash256,
    /// The difficulty credited (the session's, not the hash's).
    pub difficulty: Difficulty,
    /// The difficulty the hash actually reached.
    pub share_difficulty: Difficulty,
    /// The hash meets the network target: this share is a block.
    pub block: bool,
}

/// Checks a submit against its job. `seen` is the job's set of accepted shares on this
/// connection; an accepted share is added to it.
pub fn validate(
    ctx: &Context<'_>,
    submit: &Submit,
    seen: &mut HashSet<ShareKey>,
) -> Result<Accepted, Reject> {
    let want = ctx.coinbase.extranonce2_len;
    if submit.extranonce2.len() != want {
        return Err(Reject::Extranonce2Size {
            got: submit.extranonce2.len(),
            want,
        });
    }
    let template = ctx.job.checked();
    let (min, max) = (
        template.mintime,
        ctx.now.saturating_add(ctx.max_ntime_ahead),
    );
    if submit.ntime < min || submit.ntime > max {
        return Err(Reject::NtimeOutOfRange {
            ntime: submit.ntime,
            min,
            max,
        });
    }
    let version = match submit.version_bits {
        None => template.version,
        Some(bits) if bits & !ctx.version_mask != 0 => {
            return Err(Reject::VersionBits {
                bits,
                mask: ctx.version_mask,
            });
        }
        Some(bits) => (template.version & !ctx.version_mask) | bits,
    };
    let key = ShareKey {
        extranonce2: submit.extranonce2.clone(),
        ntime: submit.ntime,
        nonce: submit.nonce,
        version,
    };
    if seen.contains(&key) {
        return Err(Reject::Duplicate);
    }
    let header = BlockHeader {
        version,
        prev_hash: template.prev_hash,
        merkle_root: merkle_root(
            &ctx.coinbase.coinb1,
            ctx.extranonce1,
            &submit.extranonce2,
            &ctx.coinbase.coinb2,
            &ctx.job.branch,
        ),
        time: submit.ntime,
        bits: template.bits,
        nonce: submit.nonce,
    };
    let hash = header.hash();
    let block = template.target.is_met_by(&hash);
    if !ctx.target.is_met_by(&hash) && !block {
        return Err(Reject::LowDifficulty {
            got: Difficulty::of_hash(&hash),
            want: ctx.difficulty,
        });
    }
    seen.insert(key);
    Ok(Accepted {
        header,
        hash,
        difficulty: ctx.difficulty,
        share_difficulty: Difficulty::of_hash(&hash),
        block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::jobs::tests::{PREV_A, regtest_template};
    use crate::chain::jobs::{CoinbaseSettings, JobMaker};

    const EN1: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
    const MASK: u32 = 0x1fffe000;

    fn job() -> Job {
        let settings = CoinbaseSettings {
            pool_tag: b"/t/".to_vec(),
            extranonce2_size: 8,
        };
        JobMaker::new(settings, Some(vec![0x51]))
            .make(regtest_template(PREV_A, 2), 0)
            .unwrap()
    }

    fn ctx(job: &Job, difficulty: f64) -> Context<'_> {
        let difficulty = Difficulty::new(difficulty).unwrap();
        Context {
            job,
            coinbase: job.coinbase.as_deref().unwrap(),
            extranonce1: &EN1,
            version_mask: MASK,
            difficulty,
            target: difficulty.target(),
            now: 1_700_000_100,
            max_ntime_ahead: 7000,
        }
    }

    fn submit(nonce: u32) -> Submit {
        Submit {
            worker: "w".into(),
            job_id: "1".into(),
            extranonce2: vec![0; 8],
            ntime: 1_700_000_100,
            nonce,
            version_bits: None,
        }
    }

    /// The hash of a submit, computed the way a miner would (protocol's share_header).
    fn hash_of(job: &Job, s: &Submit) -> Hash256 {
        let msg = job.notify(job.coinbase.as_deref().unwrap(), true);
        let protocol::stratum::Message::Request {
            method: protocol::stratum::Method::Notify(n),
            ..
        } = msg
        else {
            panic!()
        };
        let version = s
            .version_bits
            .map_or(n.version, |b| (n.version & !MASK) | b);
        protocol::stratum::share_header(&n, &EN1, &s.extranonce2, version, s.ntime, s.nonce).hash()
    }

    /// A nonce whose hash is (or is not) a regtest block.
    fn nonce_where(job: &Job, block: bool) -> u32 {
        (0..)
            .find(|&n| job.network_target().is_met_by(&hash_of(job, &submit(n))) == block)
            .unwrap()
    }

    #[test]
    fn a_good_share_is_accepted_once() {
        let job = job();
        // Difficulty below the regtest network's: most hashes are shares, half are blocks.
        let c = ctx(&job, 1e-10);
        let mut seen = HashSet::new();
        let s = submit(nonce_where(&job, false));
        let ok = validate(&c, &s, &mut seen).unwrap();
        assert_eq!(
            ok.hash,
            hash_of(&job, &s),
            "the pool hashes what the miner hashed"
        );
        assert!(!ok.block);
        assert_eq!(ok.difficulty.get(), 1e-10);
        assert_eq!(validate(&c, &s, &mut seen), Err(Reject::Duplicate));
        // The same nonce with other version bits is another header.
        let mut rolled = s.clone();
        rolled.version_bits = Some(0x0000_2000);
        assert!(validate(&c, &rolled, &mut seen).is_ok());
        assert_eq!(validate(&c, &rolled, &mut seen), Err(Reject::Duplicate));
    }

    #[test]
    fn a_block_is_flagged_even_above_the_session_difficulty() {
        let job = job();
        let c = ctx(&job, 1e6);
        let s = submit(nonce_where(&job, true));
        let ok = validate(&c, &s, &mut HashSet::new()).unwrap();
        assert!(ok.block);
    }

    #[test]
    fn each_reject_has_its_reason() {
        let job = job();
        let c = ctx(&job, 1e6);
        let mut seen = HashSet::new();
        let s = submit(nonce_where(&job, false));
        assert!(matches!(
            validate(&c, &s, &mut seen),
            Err(Reject::LowDifficulty { want, .. }) if want.get() == 1e6
        ));
        let mut short = s.clone();
        short.extranonce2 = vec![0; 4];
        assert_eq!(
            validate(&c, &short, &mut seen),
            Err(Reject::Extranonce2Size { got: 4, want: 8 })
        );
        let mut early = s.clone();
        early.ntime = 1_699_999_999;
        assert!(matches!(
            validate(&c, &early, &mut seen),
            Err(Reject::NtimeOutOfRange {
                min: 1_700_000_000,
                ..
            })
        ));
        let mut late = s.clone();
        late.ntime = 1_700_000_100 + 7001;
        assert!(matches!(
            validate(&c, &late, &mut seen),
            Err(Reject::NtimeOutOfRange { .. })
        ));
        let mut bad_bits = s.clone();
        bad_bits.version_bits = Some(0x2000_0000);
        assert_eq!(
            validate(&c, &bad_bits, &mut seen),
            Err(Reject::VersionBits {
                bits: 0x2000_0000,
                mask: MASK
            })
        );
        // Without negotiated rolling, any bits are outside the (empty) mask.
        let mut no_mask = c;
        no_mask.version_mask = 0;
        let mut rolled = s.clone();
        rolled.version_bits = Some(0x0000_2000);
        assert!(matches!(
            validate(&no_mask, &rolled, &mut seen),
            Err(Reject::VersionBits { mask: 0, .. })
        ));
        assert!(seen.is_empty(), "rejects are not remembered");
        for r in [Reject::Stale, Reject::UnknownJob] {
            assert_eq!(r.to_error().code, StratumError::JOB_NOT_FOUND);
        }
        assert_eq!(Reject::Duplicate.to_error().code, 22);
        assert_eq!(
            Reject::LowDifficulty {
                got: Difficulty::ONE,
                want: Difficulty::new(2.0).unwrap()
            }
            .to_error()
            .code,
            23
        );
    }
}
