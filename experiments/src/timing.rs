//! Wall-clock measurement for the benchmark binaries (not for tests).

use overparam_data::Dataset;
use overparam_device::Compute;
use overparam_models::Network;
use overparam_train::{TrainConfig, TrainError, train};
use std::time::Instant;

/// The options of the benchmarks that time one computation on n points.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// n (samples).
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Timed repetitions (after one warm-up); the median is printed.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
}

/// Median of `reps` wall-clock timings of `f`, in seconds, after one untimed warm-up call.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        0.5 * (times[mid - 1] + times[mid])
    }
}

/// Median per-iteration cost of `run(k)` obtained as `(t(k_hi) − t(k_lo)) / (k_hi − k_lo)`,
/// which removes the fixed cost a run pays once (setup, a final evaluation).
pub fn marginal_seconds(reps: usize, k_lo: usize, k_hi: usize, mut run: impl FnMut(usize)) -> f64 {
    assert!(k_hi > k_lo, "k_hi must exceed k_lo");
    let lo = median_seconds(reps, || run(k_lo));
    let hi = median_seconds(reps, || run(k_hi));
    (hi - lo).max(0.0) / (k_hi - k_lo) as f64
}

/// Marginal seconds of one training step: [`marginal_seconds`] over runs of 1 and 3 steps of
/// `config(steps)` from a copy of `network`, or the first training error.
pub fn marginal_step_seconds(
    reps: usize,
    network: &Network,
    data: &Dataset,
    compute: &Compute,
    config: impl Fn(usize) -> TrainConfig,
) -> Result<f64, TrainError> {
    let mut failure = None;
    let seconds = marginal_seconds(reps, 1, 3, |steps| {
        let mut net = network.clone();
        if let Err(e) = train(&mut net, data, compute, &config(steps), &mut ()) {
            failure = Some(e);
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let mut calls = 0;
        let t = median_seconds(3, || calls += 1);
        assert_eq!(calls, 4, "one warm-up plus three timed calls");
        assert!(t >= 0.0);
    }
}
