//! Benchmarks live in `benches/` of this crate (run with `cargo bench -p benches`); the
//! Stratum load generator will live beside them as a binary. This library is empty on
//! purpose: Cargo needs a target to hang the benches on.
