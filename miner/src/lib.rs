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
//! - [`hash`]: the CPU backends (AVX-512, AVX2, SHA-NI, scalar), their shared per-job
//!   precomputation, and the start-up choice among them.

pub mod hash;
