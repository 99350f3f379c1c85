//! Training through Burn autodiff: full-batch GD and mini-batch SGD with a constant step,
//! the papers' losses, a per-layer trainable mask and an observer hook.

pub mod gradient;
pub mod loss;
pub mod trainer;

pub use gradient::{LossGradients, loss_and_gradients};
pub use loss::Loss;
pub use trainer::{
    History, Observer, Optimizer, Snapshot, TrainConfig, TrainError, step_style, train,
    train_with_progress, trainable_mask,
};
