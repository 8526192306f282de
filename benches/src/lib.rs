//! Benchmarks live in `benches/` of this crate (run with `cargo bench -p benches`); the
//! Stratum load generator is the `stratum-load` binary, its logic in [`load`].

pub mod load;
