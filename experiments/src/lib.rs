//! Shared plumbing of the experiment and benchmark binaries: the sweep runner (grid, seeds,
//! resume, shards, manifest, progress), the results store, seed statistics and the papers'
//! standard setups. Each binary in `src/bin/` only describes its grid, one run and its report.

pub mod runner;
pub mod setups;
pub mod stats;
pub mod store;
pub mod timing;
