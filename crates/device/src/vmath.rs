//! Branch-free `exp`, `log1p`, softplus and the logistic σ on f64 lanes.
//!
//! Written so that a loop over a slice compiles to SIMD code once FMA is enabled (see
//! [`crate::fused`] and [`Simd`]): no calls, no branches, only selects and integer bit work. Accuracy is a
//! few ulp over the whole f64 range, tested against the standard library below.
//!
//! * `e^x` for `x ≤ 0`: `x = k ln 2 + r` with `|r| ≤ ln 2 / 2`, Taylor to degree 13
//!   (truncation `< 5·10⁻¹⁸`), and `2^k` built from the exponent bits in two halves so that
//!   subnormal results come out right.
//! * `log(1 + f)` for `0 ≤ f ≤ 1`: above `√2 − 1` it uses `log(1 + f) = ln 2 + log(1 + (f − 1)/2)`,
//!   then fdlibm's `log(1 + f) = f − (f²/2 − s (f²/2 + R(s²)))` with `s = f/(2 + f)` and
//!   `R(z) = Σ_{j≥1} 2 z^j/(2j + 1)`, `z ≤ 0.0295`, summed to `j = 11`.

/// The FMA instruction set the kernels can be compiled for on this CPU, detected at run time.
/// Code that calls these functions runs them inside a `#[target_feature]` function of the
/// detected set; without FMA, `mul_add` would be a slow software routine, so callers use the
/// C library instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// x86-64 with AVX-512 (F, DQ, VL), AVX2 and FMA: eight f64 lanes.
    Avx512,
    /// x86-64 with AVX2 and FMA: four f64 lanes.
    Avx2,
    /// FMA is part of the target's baseline (aarch64): no dispatch needed.
    Baseline,
    /// No FMA.
    None,
}

impl Simd {
    /// The widest set this CPU has.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
            {
                Simd::Avx512
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                Simd::Avx2
            } else {
                Simd::None
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            if cfg!(target_arch = "aarch64") {
                Simd::Baseline
            } else {
                Simd::None
            }
        }
    }
}

/// `1.5·2⁵²`: adding it rounds a double of modulus below 2⁵¹ to the nearest integer, which
/// then sits in the low bits of the sum.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// `ln 2 = LN2_HI + LN2_LO`, fdlibm's split: `k·LN2_HI` is exact for `|k| < 2¹¹`.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// Taylor coefficients `1/j!` of `e^r`, j = 13 … 0 (highest first, for [`horner`]).
const EXP_TAYLOR: [f64; 14] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// `R(z)/z = Σ_{j≥1} 2 z^{j−1}/(2j + 1)`, coefficients for j = 11 … 1 (highest first).
const LOG1P_SERIES: [f64; 11] = [
    2.0 / 23.0,
    2.0 / 21.0,
    2.0 / 19.0,
    2.0 / 17.0,
    2.0 / 15.0,
    2.0 / 13.0,
    2.0 / 11.0,
    2.0 / 9.0,
    2.0 / 7.0,
    2.0 / 5.0,
    2.0 / 3.0,
];

/// `Σ_j c_j x^{N−1−j}` by Horner's rule with fused multiply–adds (highest coefficient first).
#[inline(always)]
fn horner<const N: usize>(x: f64, coefficients: [f64; N]) -> f64 {
    coefficients[1..]
        .iter()
        .fold(coefficients[0], |acc, &c| acc.mul_add(x, c))
}

/// `e^x` for `x ≤ 0` (NaN in, NaN out; below −746 it is 0).
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    let x = if x < -746.0 { -746.0 } else { x };
    let t = x.mul_add(std::f64::consts::LOG2_E, ROUND);
    let kf = t - ROUND;
    let k = (t.to_bits() as i64).wrapping_sub(ROUND.to_bits() as i64);
    let r = kf.mul_add(-LN2_LO, kf.mul_add(-LN2_HI, x));
    let p = horner(r, EXP_TAYLOR);
    // 2^k = 2^{k₁} 2^{k − k₁} with k₁ = ⌊k/2⌋: both factors stay normal down to k = −1077.
    let k1 = k >> 1;
    let k2 = k - k1;
    let pow2 = |j: i64| f64::from_bits(((j + 1023) as u64) << 52);
    p * pow2(k1) * pow2(k2)
}

/// `log(1 + f)` for `0 ≤ f ≤ 1`.
#[inline(always)]
pub fn log1p_unit(f: f64) -> f64 {
    let big = f > std::f64::consts::SQRT_2 - 1.0;
    let f_red = if big { (f - 1.0) * 0.5 } else { f };
    let s = f_red / (2.0 + f_red);
    let z = s * s;
    let r = horner(z, LOG1P_SERIES);
    let r = r * z;
    let hfsq = 0.5 * f_red * f_red;
    let log = f_red - (hfsq - s * (hfsq + r));
    if big {
        log + std::f64::consts::LN_2
    } else {
        log
    }
}

/// Softplus `log(1 + e^z) = max(z, 0) + log(1 + e^{−|z|})`.
#[inline(always)]
pub fn softplus(z: f64) -> f64 {
    let positive = if z > 0.0 { z } else { 0.0 };
    let value = positive + log1p_unit(exp_nonpositive(-z.abs()));
    if z.is_nan() { z } else { value }
}

/// The logistic `σ(z) = 1/(1 + e^{−z})`, softplus's derivative.
#[inline(always)]
pub fn sigmoid(z: f64) -> f64 {
    let e = exp_nonpositive(-z.abs());
    let r = 1.0 / (1.0 + e);
    let value = if z >= 0.0 { r } else { e * r };
    if z.is_nan() { z } else { value }
}

/// The C library's formulas the kernels are tested against (here and in [`crate::fused`]).
#[cfg(test)]
pub(crate) mod reference {
    /// `max(z, 0) + log1p(e^{−|z|})` with std's `exp` and `ln_1p`.
    pub(crate) fn softplus(z: f64) -> f64 {
        z.max(0.0) + (-z.abs()).exp().ln_1p()
    }

    /// The logistic function with std's `exp`, in the form that does not overflow.
    pub(crate) fn sigmoid(z: f64) -> f64 {
        if z >= 0.0 {
            1.0 / (1.0 + (-z).exp())
        } else {
            z.exp() / (1.0 + z.exp())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::{sigmoid as reference_sigmoid, softplus as reference_softplus};
    use super::*;

    /// Distance in units in the last place (of the larger magnitude).
    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let scale = a.abs().max(b.abs()).max(f64::MIN_POSITIVE);
        (a - b).abs() / (scale * f64::EPSILON)
    }

    /// Points spread over every binade of the range, plus the edges.
    fn grid(lo: f64, hi: f64) -> impl Iterator<Item = f64> {
        (0..=200_000).map(move |i| lo + (hi - lo) * f64::from(i) / 200_000.0)
    }

    #[test]
    fn exp_matches_the_standard_library_within_two_ulps() {
        let mut worst = 0.0f64;
        for x in grid(-708.0, 0.0)
            .chain(grid(-1.0, 0.0))
            .chain(grid(-1e-6, 0.0))
        {
            worst = worst.max(ulps(exp_nonpositive(x), x.exp()));
        }
        assert!(worst <= 2.0, "worst exp error {worst} ulp");
        // Subnormal results: absolute error within one subnormal step of the true value.
        for x in [-710.0, -720.0, -740.0, -744.5] {
            assert!(
                (exp_nonpositive(x) - x.exp()).abs() <= 2.0 * 4.9e-324,
                "exp({x})"
            );
        }
        assert_eq!(exp_nonpositive(-800.0), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }

    #[test]
    fn log1p_matches_the_standard_library_within_two_ulps() {
        let mut worst = 0.0f64;
        for f in grid(0.0, 1.0)
            .chain(grid(0.0, 1e-8))
            .chain(grid(0.40, 0.43))
        {
            worst = worst.max(ulps(log1p_unit(f), f.ln_1p()));
        }
        assert!(worst <= 2.0, "worst log1p error {worst} ulp");
        assert_eq!(log1p_unit(0.0), 0.0);
        assert_eq!(log1p_unit(4.9e-324), 4.9e-324);
    }

    #[test]
    fn softplus_and_sigmoid_match_the_libm_formulas() {
        let mut worst = [0.0f64; 2];
        for z in grid(-745.0, 745.0)
            .chain(grid(-40.0, 40.0))
            .chain(grid(-1e-3, 1e-3))
        {
            worst[0] = worst[0].max(ulps(softplus(z), reference_softplus(z)));
            worst[1] = worst[1].max(ulps(sigmoid(z), reference_sigmoid(z)));
        }
        assert!(
            worst[0] <= 3.0 && worst[1] <= 3.0,
            "worst errors {worst:?} ulp"
        );
        for z in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 800.0, -800.0] {
            let (sp, sg) = (softplus(z), sigmoid(z));
            assert!(
                sp.to_bits() == reference_softplus(z).to_bits() || (sp.is_nan() && z.is_nan()),
                "softplus({z}) = {sp}"
            );
            assert!(
                sg.to_bits() == reference_sigmoid(z).to_bits() || (sg.is_nan() && z.is_nan()),
                "sigmoid({z}) = {sg}"
            );
        }
    }
}
