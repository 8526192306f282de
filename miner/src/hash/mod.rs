//! Hashing backends: find the nonces whose sha256d may meet a target.
//!
//! A backend scans a nonce range of a [`Prepared`] job and reports `(version index, nonce)`
//! for every lane that passes the last-word filter (see `kernel.rs`). It does no final
//! target compare: the engine re-checks every hit with the protocol crate's reference
//! sha256d and the exact target, so a wrong backend shows up as hardware errors, never as
//! a bad share.

pub mod kernel;
pub mod lanes;
pub mod prepare;
pub mod select;
pub mod sha;
#[cfg(target_arch = "x86_64")]
pub mod shani;

pub use prepare::{MAX_VERSIONS, Prepared};

use std::fmt;
use std::str::FromStr;

/// A CPU hashing backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// 16 lanes of AVX-512 (F + BW): native rotates and three-input logic.
    Avx512,
    /// 8 lanes of AVX2.
    Avx2,
    /// The SHA extensions, two streams interleaved.
    ShaNi,
    /// One lane of portable Rust: runs anywhere.
    Scalar,
}

impl Backend {
    /// Every backend, fastest first on typical hardware.
    pub const ALL: [Backend; 4] = [
        Backend::Avx512,
        Backend::ShaNi,
        Backend::Avx2,
        Backend::Scalar,
    ];

    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Avx512 => "avx512",
            Backend::Avx2 => "avx2",
            Backend::ShaNi => "sha-ni",
            Backend::Scalar => "scalar",
        }
    }

    /// Nonces per kernel call; scan ranges are multiples of this.
    pub fn lanes(self) -> u32 {
        match self {
            Backend::Avx512 => 32,
            Backend::Avx2 => 8,
            Backend::ShaNi => 2,
            Backend::Scalar => 1,
        }
    }

    /// Whether this CPU can run it.
    pub fn is_supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Backend::Avx512 => {
                    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
                }
                Backend::Avx2 => is_x86_feature_detected!("avx2"),
                Backend::ShaNi => {
                    is_x86_feature_detected!("sha")
                        && is_x86_feature_detected!("sse4.1")
                        && is_x86_feature_detected!("ssse3")
                }
                Backend::Scalar => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Backend::Scalar
        }
    }

    /// The backends this CPU supports.
    pub fn supported() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_supported())
            .collect()
    }

    /// Scans nonces `start .. start + count` of every version of `job`, calling
    /// `hit(version_index, nonce)` for candidates. `count` must be a multiple of
    /// [`Backend::lanes`], and the backend must be supported (checked here: an unsupported
    /// backend scans nothing rather than executing an illegal instruction).
    pub fn scan(self, job: &Prepared, start: u32, count: u32, hit: &mut impl FnMut(usize, u32)) {
        debug_assert_eq!(count % self.lanes(), 0);
        if !self.is_supported() {
            return;
        }
        match self {
            Backend::Scalar => kernel::scan_scalar(job, start, count, hit),
            // SAFETY: support for each instruction set was checked just above.
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => unsafe { kernel::scan_avx2(job, start, count, hit) },
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => unsafe { kernel::scan_avx512(job, start, count, hit) },
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => unsafe { shani::scan(job, start, count, hit) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => {}
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--backend` name that is not a backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: expected one of avx512, avx2, sha-ni, scalar")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Ok(Backend::Avx512),
            "avx2" => Ok(Backend::Avx2),
            "sha-ni" | "shani" | "sha" => Ok(Backend::ShaNi),
            "scalar" | "generic" => Ok(Backend::Scalar),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}
