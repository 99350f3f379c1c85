//! The networks of the papers as Burn modules built from one config type.
//!
//! - A (Du, Lee, Li, Wang, Zhai, ICML 2019): [`Architecture::Fc`], [`Architecture::Resnet`],
//!   [`Architecture::ConvResnet`];
//! - B (Du, Zhai, Poczos, Singh, ICLR 2019): [`Architecture::TwoLayer`];
//! - C (Zou, Cao, Zhou, Gu): [`Architecture::DeepRelu`];
//! - D (Kawaguchi, Huang): [`Architecture::Resnet18`] (its Figure 1) and
//!   [`Architecture::Practical`] (a small residual MLP for CPU-scale sweeps).

pub mod activation;
pub mod config;
pub mod io;
pub mod network;
pub mod quadrature;
pub mod resnet18;

pub use activation::Activation;
pub use config::{Architecture, ConfigError, Init, LayerKind, LayerSpec, ModelConfig};
pub use io::{IoError, load_safetensors, save_safetensors};
pub use network::{
    ConvLayout, Network, Trace, forward, forward_traced, forward_train, initial_values,
};
pub use quadrature::{GaussHermite, GaussLegendre};
