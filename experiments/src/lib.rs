//! Shared plumbing of the experiment and benchmark binaries.

pub mod timing;
