//! overparam: train the networks of the over-parameterization papers, measure the quantities
//! their proofs rely on, and compare them with the infinite-width limits.
//!
//! This facade re-exports the workspace crates; see README.md for the map.

pub use overparam_analysis as analysis;
pub use overparam_data as data;
pub use overparam_device as device;
pub use overparam_kernels as kernels;
pub use overparam_models as models;
pub use overparam_train as train;

pub mod cli;
