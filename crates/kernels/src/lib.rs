//! What the finite networks are measured against: the infinite-width Gram matrices.
//!
//! - [`h_infinity`]: B's `H^∞` in closed form and `λ0 = λ_min(H^∞)`;
//! - [`ntk_limit`]: A's `K^(h)` recursions (Def. 5.1 for fc, Def. 6.1 for resnet, Def. 7.1
//!   for conv_resnet) and the per-layer limits of the whole Gram `G(0) = Σ_h G^(h)(0)`,
//!   including the output layer; [`k_h`] for `K^(H)` alone;
//! - [`predict`]: the GD trajectory `u(k) = y − (I − ηΘ)^k (y − u(0))` a kernel predicts.

pub mod expectation;
pub mod hinf;
pub mod ntk;
mod pairwise;
mod patches;
pub mod prediction;

pub use expectation::{GaussianPair, Moment};
pub use hinf::h_infinity;
pub use ntk::{KernelError, NtkLimit, k_h, limit_bytes, ntk_limit};
pub use prediction::{KernelPrediction, predict, predict_flow};
