//! Independent randomness: every random draw in overparam comes from one stream per
//! `(seed, purpose)`.
//!
//! The theorems assume an init independent of the data (A §3, B §3: `w_r(0) ~ N(0, I)` drawn
//! independently of `x_i`), mini-batches independent of both, and so on. Seeding two purposes'
//! generators with the same number gives them the *same* numbers: an init drawn row-major from
//! the data's seed starts with neuron r equal to ‖g‖·x_r. Here a seed never reaches a generator
//! directly: [`stream`] keys ChaCha8 with the seed and sets its 64-bit stream id (the cipher's
//! nonce) to the purpose. Two purposes therefore read different keystreams of the cipher for
//! every pair of seeds, equal ones included, while one `(seed, purpose)` always gives the same
//! numbers (bit-identical reruns).
//!
//! Every generator of the workspace is built here: clippy's `disallowed-methods`
//! (`clippy.toml` at the root) rejects `SeedableRng::seed_from_u64`, `from_seed`, `from_rng`
//! and the thread-local generators everywhere else.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

pub use rand::seq::SliceRandom;
pub use rand::{Rng, RngExt};
pub use rand_chacha::ChaCha8Rng;

/// What a stream is for. Its discriminant is the ChaCha stream id, so no two purposes can read
/// the same numbers; stream 0 (what a bare `seed_from_u64` gives) is used by none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u64)]
pub enum Purpose {
    /// Synthetic inputs (points on the sphere, C's separated data, D's random pixels).
    Data = 1,
    /// Synthetic targets and randomized labels.
    Labels = 2,
    /// A network's initial parameters.
    Init = 3,
    /// The order of SGD's mini-batches.
    BatchOrder = 4,
    /// A random teacher network that labels the data.
    Teacher = 5,
    /// Which rows of a real data set are kept (training samples).
    Subsample = 6,
    /// Which rows of a held-out set are kept (test samples).
    TestSubsample = 7,
    /// A random train/test split of one set.
    Split = 8,
    /// Start vectors of iterative eigensolvers.
    Solver = 9,
}

impl Purpose {
    /// Every purpose, for tests and documentation.
    pub const ALL: [Purpose; 9] = [
        Purpose::Data,
        Purpose::Labels,
        Purpose::Init,
        Purpose::BatchOrder,
        Purpose::Teacher,
        Purpose::Subsample,
        Purpose::TestSubsample,
        Purpose::Split,
        Purpose::Solver,
    ];

    /// The ChaCha stream id of this purpose.
    pub fn stream_id(self) -> u64 {
        self as u64
    }
}

/// The generator of `purpose` under `seed`: ChaCha8 keyed by `seed` (PCG32-expanded, as
/// `SeedableRng::seed_from_u64`), on the stream id of `purpose`.
#[allow(clippy::disallowed_methods)] // the one place a generator is seeded
pub fn stream(seed: u64, purpose: Purpose) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose.stream_id());
    rng
}

/// One standard normal draw.
pub fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Uniformly ±1 (the sign of a standard normal, so a sign costs one normal draw).
pub fn random_sign(rng: &mut ChaCha8Rng) -> f64 {
    if gaussian(rng) >= 0.0 { 1.0 } else { -1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normals(seed: u64, purpose: Purpose, k: usize) -> Vec<f64> {
        let mut rng = stream(seed, purpose);
        (0..k).map(|_| gaussian(&mut rng)).collect()
    }

    #[test]
    fn same_seed_and_purpose_repeat_bit_for_bit() {
        for p in Purpose::ALL {
            assert_eq!(normals(7, p, 100), normals(7, p, 100));
        }
    }

    #[test]
    fn purposes_with_equal_seeds_are_uncorrelated() {
        // The sample correlation of k independent pairs has sd 1/sqrt(k) = 0.0032; the bug this
        // guards against (one stream for two purposes) gives exactly 1.
        let k = 100_000;
        for seed in [0, 1, 12345] {
            let draws: Vec<Vec<f64>> = Purpose::ALL.iter().map(|&p| normals(seed, p, k)).collect();
            for a in 0..draws.len() {
                for b in a + 1..draws.len() {
                    let dot: f64 = draws[a].iter().zip(&draws[b]).map(|(x, y)| x * y).sum();
                    let corr = dot / k as f64;
                    assert!(
                        corr.abs() < 0.02,
                        "{:?} and {:?} at seed {seed}: correlation {corr}",
                        Purpose::ALL[a],
                        Purpose::ALL[b]
                    );
                }
            }
        }
    }

    #[test]
    fn no_purpose_reads_the_bare_seed_stream() {
        #[allow(clippy::disallowed_methods)]
        let mut bare = ChaCha8Rng::seed_from_u64(3);
        let bare: Vec<u64> = (0..8).map(|_| bare.next_u64()).collect();
        for p in Purpose::ALL {
            let mut rng = stream(3, p);
            let mine: Vec<u64> = (0..8).map(|_| rng.next_u64()).collect();
            assert_ne!(mine, bare, "{p:?}");
        }
        let mut ids: Vec<u64> = Purpose::ALL.iter().map(|p| p.stream_id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Purpose::ALL.len());
        assert!(!ids.contains(&0));
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(normals(0, Purpose::Init, 4), normals(1, Purpose::Init, 4));
    }
}
