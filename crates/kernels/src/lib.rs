//! What the finite networks are measured against: the infinite-width Gram matrices.
//!
//! - [`h_infinity`]: B's `H^∞` in closed form and `λ0 = λ_min(H^∞)`;
//! - [`ntk_limit`]: A's `K^(h)` recursions (Def. 5.1 for fc, Def. 6.1 for resnet, Def. 7.1
//!   for conv_resnet) and the per-layer limits of the whole Gram `G(0) = Σ_h G^(h)(0)`,
//!   including the output layer, pair by pair on vectors over positions, and between two
//!   sets of samples ([`ntk_cross`], [`KernelSet::block`]);
//! - [`predict`]: the GD trajectory `u(k) = y − (I − ηΘ)^k (y − u(0))` a kernel predicts, and
//!   [`predict_test`] its outputs on test points (kernel regression as k → ∞).

pub mod expectation;
mod fma;
pub mod hinf;
mod moments;
pub mod ntk;
mod pairwise;
mod patches;
pub mod prediction;
mod price;
#[cfg(test)]
mod reference;
mod series;

pub use expectation::{GaussianPair, Moment};
pub use hinf::{h_infinity, h_infinity_cross};
pub use ntk::{
    KernelError, KernelSet, NtkLimit, block_bytes, limit_bytes, ntk_cross, ntk_limit, pair_count,
};
pub use pairwise::mirror_lower;
pub use prediction::{KernelPrediction, TestPrediction, predict, predict_flow, predict_test};
