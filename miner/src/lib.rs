//! The miner: hashing backends (CPU through rayon, OpenCL GPUs), a dispatcher, and work
//! sources (a Stratum v1 client, or solo mining from a node's getblocktemplate).
//!
//! Data flow (see docs/architecture.md):
//!
//! ```text
//! work source (stratum client | solo GBT) --Work--> engine --> backends (cpu, opencl)
//! backends --candidates--> engine re-check (reference sha256d) --Found--> work source
//! ```
//!
//! - [`engine`]: the rayon thread pool that splits work into units, runs a backend, and
//!   re-checks every hit with the reference sha256d.
//! - [`hash`]: the CPU backends (AVX-512, AVX2, SHA-NI, scalar), their shared per-job
//!   precomputation, and the start-up choice among them.

pub mod api;
pub mod bench;
pub mod client;
pub mod config;
pub mod engine;
pub mod hash;
#[cfg(unix)]
pub mod logging;
pub mod opencl;
pub mod run;
pub mod selfcheck;
pub mod sensors;
pub mod solo;
pub mod stats;
pub mod thermal;
