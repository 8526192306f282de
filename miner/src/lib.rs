//! The miner: hashing backends (CPU through rayon, OpenCL GPUs), a dispatcher, and work
//! sources (a Stratum v1 client, or solo mining from a node's getblocktemplate).
//!
//! Data flow (see docs/architecture.md):
//!
//! ```text
//! work source (stratum client | solo GBT) --Work--> dispatcher --> backends (cpu, opencl)
//! backends --Solution (re-verified on CPU)--> work source --submit--> pool or node
//! ```
//!
//! Everything it needs to agree on with pools and nodes (headers, targets, merkle branches,
//! coinbases, Stratum messages) comes from the `protocol` crate; the hashing engine and the
//! client are built on top of it.
