//! Mehler's series for a layer whose variances differ by sample and position (the conv
//! recursions), eight positions at a time.
//!
//! With `d_k(a)` the orthonormal Hermite coefficients of σ' at variance a (see
//! [`GaussianPair::hermite_batch`]), Mehler's formula gives
//! `E[σ'(u)σ'(v)] = Σ_k ρ^k d_k(a) d_k(b)` for `(u, v) ~ N(0, [[a, c], [c, b]])`,
//! `ρ = c / sqrt(ab)`. Gaussian integration by parts (`E[f(z) He_k(z)] = E[f'(z) He_{k−1}(z)]`)
//! gives σ's own coefficients from σ' ones, `c_k(a) = sqrt(a/k) d_{k−1}(a)` for k ≥ 1 and
//! `c_0(a) = E[σ(sqrt(a) z)] = μ(a)`, so one set of coefficients serves both expectations:
//!
//! `E[σ(u)σ(v)] = μ(a) μ(b) + sqrt(ab) ρ Σ_k ρ^k d_k(a) d_k(b) / (k + 1)`.
//!
//! Each entry (sample, position) is computed to the degree its block's largest variance needs
//! and keeps its coefficients up to the first multiple of eight where the rest has norm
//! `‖d_{≥L}‖ ≤ 1e-7` ([`TRUNCATION`]); a block keeps its longest lane's. By Cauchy–Schwarz the
//! series of a pair, cut at `L = min(L_a, L_b)` of the two blocks, misses at most
//! `|ρ|^L ‖d_{≥L}(a)‖ ‖d_{≥L}(b)‖` (and `sqrt(ab)/(L + 1)` times that in the values), the
//! norms including an estimate of the terms beyond the computed degree; where that bound
//! exceeds 1e-13 of the expectation ([`TOLERANCE`]: very different or very large variances
//! near ρ = ±1), the pair goes to Price's series or the direct quadrature.
//!
//! The coefficients are stored per sample in blocks of eight consecutive positions, lane-
//! interleaved (`[k][lane]`), so that a pair of samples evaluates a block as eight-lane
//! vector operations, and a tile of pairs reads each block from cache.

use crate::expectation::{GaussianPair, Moment, analytic_strip};
use crate::fma::fma_variants;
use crate::pairwise::{for_each_part, parallel_map, per_distinct};
use crate::price::PriceSeries;
use overparam_device::vmath::Simd;

/// Positions per block: eight f64 lanes (one AVX-512 register).
pub(crate) const LANES: usize = 8;
/// The highest degree computed (enough for variances up to ~12, the deepest layers of A's
/// conv ResNet on unit-norm images; beyond, the bound sends pairs near ρ = ±1 elsewhere).
const MAX_DEGREE: usize = 320;
/// An entry's coefficients stop where the norm of the rest is below this.
const TRUNCATION: f64 = 1e-7;
/// The largest bound on the error of a pair's truncated series that is accepted, relative
/// to the expectation (or to [`FLOOR`], if smaller).
const TOLERANCE: f64 = 1e-13;
/// The smallest magnitude [`TOLERANCE`] is relative to.
const FLOOR: f64 = 1e-3;

/// The degree computed at variance a for σ' analytic in the strip `|Im| < δ`: the
/// coefficients decay like `e^{−δ sqrt(2k/a)}`, so the truncation point grows like `a/δ²`
/// (18a + 10 terms for a tail of 1e-6 at δ = π), with room to measure the tail beyond it.
fn degree(a: f64, strip: f64) -> usize {
    let scale = (std::f64::consts::PI / strip).powi(2);
    let k = (24.0 * scale * a.max(0.0) + 40.0).min(MAX_DEGREE as f64) as usize;
    k.next_multiple_of(LANES)
}

/// `1/(k + 1)` for the values' series.
const RECIPROCALS: [f64; MAX_DEGREE + LANES] = {
    let mut r = [0.0; MAX_DEGREE + LANES];
    let mut k = 0;
    while k < MAX_DEGREE + LANES {
        r[k] = 1.0 / (k + 1) as f64;
        k += 1;
    }
    r
};

/// The coefficients of every (sample, position) entry of a layer, in blocks.
pub(crate) struct SeriesBlocks {
    positions: usize,
    /// Blocks per sample, `ceil(positions / 8)`.
    blocks: usize,
    /// Per block: where it starts in `data` and its length L (a multiple of 8). At the start,
    /// eight means μ, then `[k][lane]` coefficients for k < L, then `[m][lane]` tail norms
    /// `‖d_{≥8m}‖` for m ≤ L/8.
    start: Vec<usize>,
    length: Vec<u32>,
    data: Vec<f64>,
    price: Option<PriceSeries>,
    simd: Simd,
}

/// Where one entry's coefficients are cut, L, and the tail norms `‖d_{≥8m}‖` of all of them.
struct Entry {
    length: usize,
    tails: Vec<f64>,
}

impl Entry {
    fn new(coefficients: &[f64]) -> Self {
        let count = coefficients.len();
        let mut suffix = vec![0.0; count + 1];
        for k in (0..count).rev() {
            suffix[k] = suffix[k + 1] + coefficients[k] * coefficients[k];
        }
        let norm = |k: usize| suffix[k.min(count)].sqrt();
        // Beyond the computed degree the terms are unknown: the last sixteen, continued
        // geometrically at the ratio of their norm to that of the sixteen before (at most
        // 0.9, ten times the last sixteen, where they hardly shrink), stand for them.
        let (last, before) = (
            norm(count.saturating_sub(2 * LANES)),
            norm(count.saturating_sub(4 * LANES)),
        );
        let ratio = if before > 0.0 {
            (last / before).min(0.9)
        } else {
            0.0
        };
        let beyond = last * ratio / (1.0 - ratio);
        let length = (LANES..=count)
            .step_by(LANES)
            .find(|&l| norm(l) <= TRUNCATION && l + 2 * LANES <= count)
            .unwrap_or(count - count % LANES);
        let tails = (0..=count / LANES)
            .map(|m| norm(m * LANES) + beyond)
            .collect();
        Self { length, tails }
    }
}

impl SeriesBlocks {
    /// The coefficients of the entries with variances `diag` and means `E[σ(sqrt(a) z)]`
    /// `means` (`positions` per sample).
    pub(crate) fn new(pair: GaussianPair, diag: &[f64], means: &[f64], positions: usize) -> Self {
        let (distinct, slot) = per_distinct(diag, |a| a);
        let strip = analytic_strip(pair.activation());
        // Every entry of a block is computed to the degree of the block's largest variance,
        // so that the block's series never runs past what one of its lanes knows.
        let blocks = positions.div_ceil(LANES);
        let samples = diag.len() / positions;
        let block_entries = |i: usize, block: usize| {
            (block * LANES..((block + 1) * LANES).min(positions)).map(move |l| i * positions + l)
        };
        let mut needed = vec![0; distinct.len()];
        for (i, block) in (0..samples).flat_map(|i| (0..blocks).map(move |b| (i, b))) {
            let largest = block_entries(i, block).fold(0.0f64, |m, e| m.max(diag[e]));
            for e in block_entries(i, block) {
                needed[slot[e]] = needed[slot[e]].max(degree(largest, strip));
            }
        }
        let coefficients = pair.hermite_batch(Moment::Derivatives, &distinct, |i| needed[i]);
        let entries = parallel_map(distinct.len(), &|i| Entry::new(&coefficients[i]));
        let lanes = |i: usize, block: usize| block_entries(i, block).map(|e| slot[e]);
        let length: Vec<u32> = (0..samples * blocks)
            .map(|b| {
                // The longest lane's length, within what every lane has computed (a variance
                // shared with a block of larger variances may have more).
                let (i, block) = (b / blocks, b % blocks);
                let computed = lanes(i, block)
                    .map(|s| coefficients[s].len())
                    .min()
                    .unwrap_or(0);
                let longest = lanes(i, block).map(|s| entries[s].length).max();
                longest.unwrap_or(0).min(computed - computed % LANES) as u32
            })
            .collect();
        // Block b holds its means, L rows of coefficients and L/8 + 1 rows of tail norms.
        let size = |b: usize| LANES * (2 + length[b] as usize + length[b] as usize / LANES);
        let mut start = Vec::with_capacity(length.len() + 1);
        start.push(0);
        for b in 0..length.len() {
            start.push(start[b] + size(b));
        }
        let mut data = vec![0.0; start[length.len()]];
        // One sample's blocks after another, filled on all cores.
        let mut rest = data.as_mut_slice();
        let mut parts = Vec::with_capacity(samples);
        for i in 0..samples {
            let (own, tail) = rest.split_at_mut(start[(i + 1) * blocks] - start[i * blocks]);
            parts.push((i, own));
            rest = tail;
        }
        for_each_part(parts, &|(i, own)| {
            let mut at = 0;
            for block in 0..blocks {
                let len = length[i * blocks + block] as usize;
                for (lane, e) in block_entries(i, block).enumerate() {
                    let (s, rows) = (slot[e], 1 + len + len / LANES + 1);
                    let column = (0..rows).map(|r| at + r * LANES + lane);
                    let values = std::iter::once(means[e])
                        .chain(coefficients[s][..len].iter().copied())
                        .chain(entries[s].tails[..=len / LANES].iter().copied());
                    for (index, value) in column.zip(values) {
                        own[index] = value;
                    }
                }
                at += size(i * blocks + block);
            }
        });
        start.pop();
        Self {
            positions,
            blocks,
            start,
            length,
            data,
            price: PriceSeries::new(pair.activation()),
            simd: Simd::detect(),
        }
    }

    /// The bytes one entry holds at most: its mean, `MAX_DEGREE` coefficients and their tails.
    pub(crate) const ENTRY_BYTES: usize = 8 * (1 + MAX_DEGREE + LANES + MAX_DEGREE / LANES + 1);

    /// Both expectations at the positions `first ..` of samples i and j (`first` a multiple
    /// of 8): variances `a[l]`, `b[l]`, covariances `c[l]`, into `values[l]` and
    /// `derivatives[l]`; `same` when both are one sample.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval(
        &self,
        pair: GaussianPair,
        (i, j, first): (usize, usize, usize),
        (a, b, c): (&[f64], &[f64], &[f64]),
        same: bool,
        values: &mut [f64],
        derivatives: &mut [f64],
    ) {
        debug_assert!(first.is_multiple_of(LANES) && first + a.len() <= self.positions);
        for (chunk, offset) in (0..a.len()).step_by(LANES).enumerate() {
            let block = first / LANES + chunk;
            let lanes = (a.len() - offset).min(LANES);
            // Whole blocks by fixed-size copies (a copy of run-time length calls memmove).
            #[inline(always)]
            fn lanes_of(s: &[f64]) -> [f64; LANES] {
                match s.first_chunk::<LANES>() {
                    Some(whole) => *whole,
                    None => {
                        let mut part = [0.0; LANES];
                        part[..s.len()].copy_from_slice(s);
                        part
                    }
                }
            }
            let x = [
                lanes_of(&a[offset..]),
                lanes_of(&b[offset..]),
                lanes_of(&c[offset..]),
            ];
            let (v, d, accepted) =
                self.block((i * self.blocks + block, j * self.blocks + block), x, same);
            for lane in 0..lanes {
                let (value, derivative) = if accepted[lane] {
                    (v[lane], d[lane])
                } else {
                    let (a, b, c) = (x[0][lane], x[1][lane], x[2][lane]);
                    self.price
                        .as_ref()
                        .and_then(|p| p.moments(a, b, c))
                        .unwrap_or_else(|| pair.moments(a, b, c))
                };
                values[offset + lane] = value;
                derivatives[offset + lane] = derivative;
            }
        }
    }

    fma_variants! {
        /// One block of a pair: both series on eight lanes, and whether each lane's bound
        /// holds.
        fn block(
            &self,
            blocks: (usize, usize),
            x: [[f64; LANES]; 3],
            same: bool
        ) -> ([f64; LANES], [f64; LANES], [bool; LANES])
            = block_with on self.simd, via block_avx512, block_avx2
    }

    /// [`Self::block`] with fused multiply-adds (`FMA`) or without.
    #[inline(always)]
    fn block_with<const FMA: bool>(
        &self,
        (bi, bj): (usize, usize),
        [a, b, c]: [[f64; LANES]; 3],
        same: bool,
    ) -> ([f64; LANES], [f64; LANES], [bool; LANES]) {
        let fma = |x: f64, y: f64, z: f64| if FMA { x.mul_add(y, z) } else { x * y + z };
        let len = self.length[bi].min(self.length[bj]) as usize;
        let (si, sj) = (self.start[bi], self.start[bj]);
        let (mut norm, mut rho, mut rho4) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            norm[l] = (a[l] * b[l]).sqrt();
            // A sample with itself has ρ = 1 exactly, whatever the rounding of its covariance.
            rho[l] = if same {
                1.0
            } else if norm[l] > 0.0 {
                (c[l] / norm[l]).clamp(-1.0, 1.0)
            } else {
                0.0
            };
            let r2 = rho[l] * rho[l];
            rho4[l] = r2 * r2;
        }
        // Four interleaved Horner chains in ρ⁴ per series, so that the additions do not wait
        // on each other.
        let (mut dchains, mut vchains) = ([[0.0; LANES]; 4], [[0.0; LANES]; 4]);
        let ci = &self.data[si + LANES..si + LANES * (len + 1)];
        let cj = &self.data[sj + LANES..sj + LANES * (len + 1)];
        for q in (0..len / 4).rev() {
            for m in 0..4 {
                let k = 4 * q + m;
                let (x, y) = (&ci[k * LANES..][..LANES], &cj[k * LANES..][..LANES]);
                let r = RECIPROCALS[k];
                for l in 0..LANES {
                    let p = x[l] * y[l];
                    dchains[m][l] = fma(dchains[m][l], rho4[l], p);
                    vchains[m][l] = fma(vchains[m][l], rho4[l], p * r);
                }
            }
        }
        let (mi, mj) = (&self.data[si..si + LANES], &self.data[sj..sj + LANES]);
        let tail = len / LANES;
        let (ti, tj) = (
            &self.data[si + LANES * (1 + self.length[bi] as usize + tail)..][..LANES],
            &self.data[sj + LANES * (1 + self.length[bj] as usize + tail)..][..LANES],
        );
        // |ρ|^L on all lanes by binary powers (L is one for all of them).
        let (mut damping, mut power, mut exponent) = ([1.0; LANES], rho.map(f64::abs), len);
        while exponent > 0 {
            if exponent & 1 == 1 {
                for l in 0..LANES {
                    damping[l] *= power[l];
                }
            }
            for p in power.iter_mut() {
                *p *= *p;
            }
            exponent >>= 1;
        }
        let (mut values, mut derivatives, mut accepted) =
            ([0.0; LANES], [0.0; LANES], [false; LANES]);
        for l in 0..LANES {
            let horner = |chains: &[[f64; LANES]; 4]| {
                let r = rho[l];
                chains[0][l] + r * (chains[1][l] + r * (chains[2][l] + r * chains[3][l]))
            };
            derivatives[l] = horner(&dchains);
            values[l] = mi[l] * mj[l] + norm[l] * rho[l] * horner(&vchains);
            let bound = ti[l] * tj[l] * damping[l];
            accepted[l] = bound <= TOLERANCE * derivatives[l].abs().max(FLOOR)
                && bound * norm[l] / (len + 1) as f64 <= TOLERANCE * values[l].abs().max(FLOOR);
        }
        (values, derivatives, accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overparam_models::Activation;

    /// Two samples of 11 positions (a block and a partial one) with variances from 0.01 to 12
    /// (the range of A's deep conv layers on unit-norm images) and correlations from −1 to 1,
    /// many near ±1: the series where it is accepted, its fallbacks elsewhere, and how often
    /// each is used.
    fn check(act: Activation, exact: impl Fn(f64, f64, f64) -> (f64, f64)) -> (f64, usize) {
        let p = 11;
        let diag: Vec<f64> = (0..2 * p)
            .map(|e| 0.01 + 12.0 * ((e * 37) % 23) as f64 / 22.0)
            .collect();
        let rhos = [
            -1.0, -0.9995, -0.7, 0.0, 0.3, 0.9, 0.99, 0.999, 0.9999, 0.999_999, 1.0,
        ];
        let pair = GaussianPair::new(act);
        let means: Vec<f64> = diag.iter().map(|&a| pair.mean(a)).collect();
        let blocks = SeriesBlocks::new(pair, &diag, &means, p);
        let (a, b) = diag.split_at(p);
        let (mut worst, mut accepted_lanes) = (0.0f64, 0);
        for shift in 0..rhos.len() {
            let c: Vec<f64> = (0..p)
                .map(|l| rhos[(l + shift) % rhos.len()] * (a[l] * b[l]).sqrt())
                .collect();
            let (mut v, mut d) = (vec![0.0; p], vec![0.0; p]);
            blocks.eval(pair, (0, 1, 0), (a, b, &c), false, &mut v, &mut d);
            for (first, block) in [(0, 0), (LANES, 1)] {
                let mut x = [[0.0; LANES]; 3];
                for (x, s) in x.iter_mut().zip([a, b, &c[..]]) {
                    let len = (p - first).min(LANES);
                    x[..len].copy_from_slice(&s[first..first + len]);
                }
                let accepted = blocks.block((block, blocks.blocks + block), x, false).2;
                accepted_lanes += accepted[..(p - first).min(LANES)]
                    .iter()
                    .filter(|&&a| a)
                    .count();
            }
            for l in 0..p {
                let (ev, ed) = exact(a[l], b[l], c[l]);
                worst = worst
                    .max((v[l] - ev).abs() / ev.abs().max(1.0))
                    .max((d[l] - ed).abs() / ed.abs().max(1.0));
            }
        }
        (worst, accepted_lanes)
    }

    #[test]
    fn blocks_match_the_direct_quadrature() {
        for act in [
            Activation::Softplus,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Gelu,
        ] {
            let pair = GaussianPair::new(act);
            let (worst, accepted) = check(act, |a, b, c| pair.moments(a, b, c));
            assert!(worst < 1e-13, "{act}: worst relative difference {worst:e}");
            // The series is the fast path: it must take most of the 121 cases (tanh and
            // GELU, analytic in a narrower strip, converge more slowly at large variances).
            let least = if analytic_strip(act) >= std::f64::consts::PI {
                110
            } else {
                50
            };
            assert!(
                accepted >= least,
                "{act}: series accepted {accepted} of 121"
            );
        }
    }

    #[test]
    fn blocks_reproduce_the_erf_kernels() {
        // erf has closed forms (and no Price series: every rejected lane is exact too), so this
        // checks the series, the values from σ' coefficients and the bound independently.
        let pair = GaussianPair::new(Activation::Erf);
        let (worst, accepted) = check(Activation::Erf, |a, b, c| {
            (pair.sigma_sigma(a, b, c), pair.dsigma_dsigma(a, b, c))
        });
        assert!(worst < 1e-13, "erf: worst relative difference {worst:e}");
        assert!(accepted >= 50, "erf: series accepted {accepted} of 121");
    }
}
