//! What the proofs of A and B rely on, measured on a real network: per-layer Gram (neural
//! tangent kernel) matrices `G^(h) = J_h J_hᵀ` by two strategies, their spectra in f64, and
//! the training-dynamics quantities recorded during GD.

pub mod dynamics;
pub mod extremes;
pub mod gram;
pub mod npy;
pub mod spectrum;

pub use dynamics::{DynamicsRecorder, Record, pattern_changes};
pub use extremes::{Extremes, ExtremesMethod, extremes, symmetric_norm};
pub use gram::{AnalysisError, GramPrecision, GramStrategy, LayerGrams, grams, grams_in};
pub use npy::{NpyWriter, write_npy};
pub use spectrum::{Spectrum, SpectrumMode, operator_norm, spectral_norm};
