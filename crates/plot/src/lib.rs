//! Figures for the experiments: line charts with optional log axes, min–max bands over seeds,
//! dashed theory overlays and horizontal reference lines, written as SVG and PNG.
//!
//! The PNG renderer uses DejaVu Sans embedded in the binary (`assets/`, its licence beside
//! it), so figures render the same on a machine without any installed font.

mod figure;
mod fit;

pub use figure::{Figure, Legend, PlotError, Scale, Series, Style};
pub use fit::{LineFit, log_log_fit};
