//! Training through Burn autodiff: full-batch GD and mini-batch SGD with a constant step,
//! optional momentum and weight decay, the papers' losses, a per-layer trainable mask, an
//! observer hook, and checkpoints that a killed run resumes from exactly.

pub mod checkpoint;
pub mod gradient;
pub mod loss;
pub mod trainer;

pub use checkpoint::{CheckpointError, Checkpointing};
pub use gradient::{LossGradients, loss_and_gradients};
pub use loss::Loss;
pub use trainer::{
    History, Observer, Optimizer, Snapshot, TrainConfig, TrainError, step_style, train,
    train_with_progress, trainable_mask,
};
