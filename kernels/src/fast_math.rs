//! Elementary functions made of fused multiply-adds and other arithmetic only, so that loops
//! calling them vectorise (a scalar `libm` call per element does not) and run one instruction
//! per polynomial term.

/// `e^x` for f32 `x`: `x = n·ln2 + r` with `|r| <= ln2/2`, `e^r` by its degree-6 Taylor
/// polynomial, `2^n` built in the exponent bits from integer operations only; relative error below 4e-7 (a few f32 ulps).
/// Large inputs are clamped to f32's finite range. Below [`EXP_UNDERFLOW`] the result is 0, not
/// a subnormal: a masked softmax's probabilities are then exactly zero, and the products they
/// feed do not run on subnormal operands (measured about 50× slower in AVX-512 FMAs on an Intel
/// Xeon, where they made the BERT-mini step 4.8× slower).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let underflows = x < EXP_UNDERFLOW;
    let x = x.clamp(EXP_UNDERFLOW, 88.0);
    let shifted = x.mul_add(std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let p = horner(
        r,
        &[
            1.0,
            1.0,
            0.5,
            1.0 / 6.0,
            1.0 / 24.0,
            1.0 / 120.0,
            1.0 / 720.0,
        ],
    );
    // `n` as an integer is the difference of the two sums' bits (their exponents match), which
    // vectorises where a float-to-int cast (saturating in Rust) does not.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let value = p * f32::from_bits(n_int.wrapping_add(127) << 23);
    // A select, not a branch, so the loops calling this stay vectorised.
    if underflows {
        0.0
    } else {
        value
    }
}

/// `Σ coefficients[i] · x^i` by Horner's rule, one fused multiply-add per coefficient above
/// the constant: a single instruction in the AVX2 and AVX-512 paths of
/// [`crate::simd::vectorized`], a libm call in the baseline one (x86-64 CPUs without AVX2,
/// where the loops then run scalar). The fused operation is correctly rounded everywhere, so
/// every path gives the same bits.
#[inline(always)]
pub(super) fn horner<const N: usize>(x: f32, coefficients: &[f32; N]) -> f32 {
    let (highest, lower) = coefficients
        .split_last()
        .expect("a polynomial has at least one coefficient");
    lower
        .iter()
        .rev()
        .fold(*highest, |acc, &c| acc.mul_add(x, c))
}

/// Where `e^x` leaves f32's normal range (`e^−87 ≈ 1.6e-38`, the smallest normal being
/// `1.2e-38`): [`exp`] gives 0 below it.
pub(super) const EXP_UNDERFLOW: f32 = -87.0;

/// Lanes of the partial results below: one AVX-512 register of f32.
const LANES: usize = 16;

/// Folds `xs` into [`LANES`] partial results with `step`, then the lanes with `step` (a fixed
/// order, so the result has the same bits every run), starting from `init`.
#[inline(always)]
fn fold_lanes(xs: &[f32], init: f32, step: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = step(*lane, x);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |acc, &x| step(acc, x));
    lanes.into_iter().fold(tail, step)
}

/// `Σ xs`, in lanes the compiler vectorises (a plain float sum runs one add at a time).
#[inline(always)]
pub(super) fn sum(xs: &[f32]) -> f32 {
    fold_lanes(xs, 0.0, |a, b| a + b)
}

/// The largest element of `xs` (−∞ when empty), in lanes.
#[inline(always)]
pub(super) fn max(xs: &[f32]) -> f32 {
    fold_lanes(xs, f32::NEG_INFINITY, f32::max)
}

/// `Σ f(x)` over `xs`, in lanes: `f` is applied block by block into a stack buffer, so that
/// loop vectorises too.
#[inline(always)]
pub(super) fn sum_map(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut buffer = [0f32; 256];
    xs.chunks(buffer.len())
        .map(|block| {
            let values = &mut buffer[..block.len()];
            values.iter_mut().zip(block).for_each(|(v, &x)| *v = f(x));
            sum(values)
        })
        .fold(0.0, |acc, s| acc + s)
}

/// `Σ a·b` over the shorter of the two, in lanes.
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (a, b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a
        .remainder()
        .iter()
        .zip(b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (a, b) in a.zip(b) {
        for ((lane, x), y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += x * y;
        }
    }
    lanes.into_iter().fold(tail, |acc, x| acc + x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_match_plain_ones() {
        for n in [0, 1, 15, 16, 17, 100, 1000] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
            let plain_sum: f32 = xs.iter().sum();
            assert!((sum(&xs) - plain_sum).abs() <= 1e-3, "sum of {n}");
            let plain_squares: f32 = xs.iter().map(|x| x * x).sum();
            let squares = sum_map(&xs, |x| x * x);
            assert!((squares - plain_squares).abs() <= 1e-3 * plain_squares.max(1.0));
            let plain_max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&xs), plain_max, "max of {n}");
            let plain_dot: f32 = xs.iter().map(|x| x * x).sum();
            assert!(
                (dot(&xs, &xs) - plain_dot).abs() <= 1e-3 * plain_dot.max(1.0),
                "dot of {n}"
            );
        }
    }

    #[test]
    fn exp_gives_zero_instead_of_a_subnormal() {
        for x in [-87.01f32, -88.0, -100.0, -1e4, f32::MIN] {
            assert_eq!(exp(x), 0.0, "exp({x})");
        }
        let smallest = exp(EXP_UNDERFLOW);
        assert!(smallest.is_normal(), "exp(-87) = {smallest:e}");
    }

    #[test]
    fn exp_is_within_its_stated_error() {
        for i in -800..=800 {
            let x = i as f32 / 10.0;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                (got - want).abs() <= 4e-7 * want,
                "exp({x}) = {got}, want {want}"
            );
        }
    }
}
