//! The self-check `miner bench` runs first: known real headers whose winning nonces are
//! known must be found by the chosen backend, with exactly the hits the reference finds.

use protocol::{BlockHeader, Target};

use crate::engine::{Plan, Verdict, Work};
use crate::hash::Backend;

/// A self-check case that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("self-check {case} failed on {backend}: {detail}")]
pub struct SelfCheckError {
    /// Which case.
    pub case: &'static str,
    /// The backend under test.
    pub backend: Backend,
    /// What differed.
    pub detail: String,
}

struct Case {
    name: &'static str,
    header_hex: &'static str,
    /// Target as a pool difficulty, or the header's own network target when `None`.
    difficulty: Option<f64>,
    version_mask: u32,
}

const CASES: &[Case] = &[
    // Bitcoin block 125552: a mainnet block, network target (difficulty >= 1 path).
    Case {
        name: "mainnet block 125552",
        header_hex: "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695",
        difficulty: None,
        version_mask: 0,
    },
    // The same block with 4 rolled versions: version index 0 must still win.
    Case {
        name: "block 125552, version rolling",
        header_hex: "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695",
        difficulty: None,
        version_mask: 0x0000_6000,
    },
    // Regtest block 219 from the captured ckpool session: a share of difficulty 0.01, where
    // the last hash word is not zero (difficulty below 1 path).
    Case {
        name: "regtest share at difficulty 0.01",
        header_hex: "00000020c0e7783c05c507f7e908fd0b5a265573ba42f5bf174b8214ae12157100000000ef3626585fa91d480b4bf21bf1beb3a9f5369933f9ac79e93a69429039e1ca4a6266026bffff7f2001683932",
        difficulty: Some(0.01),
        version_mask: 0,
    },
];

/// Nonces scanned around each known winner.
const WINDOW: u32 = 1 << 16;

/// Runs every case on `backend`.
pub fn run(backend: Backend) -> Result<(), SelfCheckError> {
    for case in CASES {
        check(backend, case)?;
    }
    Ok(())
}

fn check(backend: Backend, case: &Case) -> Result<(), SelfCheckError> {
    let fail = |detail: String| SelfCheckError {
        case: case.name,
        backend,
        detail,
    };
    let bytes = hex::decode(case.header_hex).map_err(|e| fail(e.to_string()))?;
    let header = BlockHeader::decode(&bytes).map_err(|e| fail(e.to_string()))?;
    let target = match case.difficulty {
        Some(d) => Target::from_difficulty(d).map_err(|e| fail(e.to_string()))?,
        None => header.bits.to_target().map_err(|e| fail(e.to_string()))?,
    };
    let plan = Plan::new(Work {
        job_id: case.name.into(),
        header,
        target,
        version_mask: case.version_mask,
        extranonce: None,
    });
    let (job, _, _) = plan.prepare(0, 0);
    let start = header.nonce & !(WINDOW - 1);

    // What the backend finds, re-checked as the engine does.
    let mut found = Vec::new();
    let mut errors = Vec::new();
    backend.scan(
        &job,
        start,
        WINDOW,
        &mut |vi, n| match crate::engine::work::recheck(&job, vi, n, &target) {
            Verdict::Meets(_) => found.push((vi, n)),
            Verdict::Above => {}
            Verdict::HardwareError(h) => {
                errors.push(format!("nonce {n:#010x}: reference hash {h}"))
            }
        },
    );
    if !errors.is_empty() {
        return Err(fail(format!("hardware errors: {}", errors.join("; "))));
    }
    // What the reference finds, nonce by nonce.
    let mut expected = Vec::new();
    for n in start..start + WINDOW {
        for (vi, v) in job.versions.iter().enumerate() {
            let hash = protocol::Midstate(v.midstate).sha256d(&job.tail.with_nonce(n));
            if target.is_met_by(&hash) {
                expected.push((vi, n));
            }
        }
    }
    found.sort_unstable();
    if found != expected {
        return Err(fail(format!(
            "found {found:?}, the reference finds {expected:?}"
        )));
    }
    if !found.contains(&(0, header.nonce)) {
        return Err(fail(format!(
            "the known nonce {:#010x} was not found",
            header.nonce
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_supported_backend_passes() {
        for backend in crate::hash::Backend::supported() {
            super::run(backend).unwrap();
        }
    }
}
