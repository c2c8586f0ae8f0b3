//! The exact (erf) GELU: `x · Φ(x) = 0.5 · x · (1 + erf(x / √2))`.
//!
//! `erf` is evaluated with a polynomial approximation made of multiplies and adds only
//! (Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7) and `exp` with
//! [`super::fast_math::exp`], so the compiler vectorises the loops; the scalar `libm` calls
//! took most of a BERT step's GELU time.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fast_math::{exp, horner};
use super::rows::{f32_inputs, f32_slice, fused, par_map, ELEMENTS_PER_TASK};
use crate::simd::vectorized;

/// Exact GELU of every element. Fused on f32 CPU tensors, candle's `gelu_erf` elsewhere.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return gelu_erf_primitive(x);
    }
    x.contiguous()?.apply_op1(Gelu)
}

/// [`gelu_erf`] as candle computes it (its own differentiable op).
pub fn gelu_erf_primitive(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// `Φ(x)`, the standard normal CDF, and `exp(−x²/2)`, which both `Φ` (through
/// `erf(x/√2)`, Abramowitz & Stegun 7.1.26, odd symmetry for negative `x`) and the normal
/// density need: one `exp` serves both.
#[inline(always)]
fn cdf_and_gaussian(x: f32) -> (f32, f32) {
    let gaussian = exp(-0.5 * x * x);
    let a = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * horner(
        t,
        &[
            0.254_829_6,
            -0.284_496_74,
            1.421_413_8,
            -1.453_152,
            1.061_405_4,
        ],
    );
    let erf = (-poly).mul_add(gaussian, 1.0).copysign(x);
    (0.5f32.mul_add(erf, 0.5), gaussian)
}

/// `Φ(x)`, the standard normal CDF.
#[inline(always)]
fn cdf(x: f32) -> f32 {
    cdf_and_gaussian(x).0
}

/// `1 / √(2π)`, the standard normal density's factor.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// The GELU of every element of `x`, in one parallel pass.
pub(super) fn gelu_values(x: &[f32]) -> Vec<f32> {
    par_map(x, |x| x * cdf(x))
}

/// The gradient of GELU's input, `g · (Φ(x) + x · φ(x))` with `φ` the standard normal
/// density, from the input `x` and the output's gradient `g`, in one parallel pass.
pub(super) fn gelu_backward_values(x: &[f32], g: &[f32]) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(
            x.par_chunks(ELEMENTS_PER_TASK)
                .zip(g.par_chunks(ELEMENTS_PER_TASK)),
        )
        .for_each(|(dx, (x, g))| {
            vectorized!({
                for ((dx, &x), g) in dx.iter_mut().zip(x).zip(g) {
                    let (cdf, gaussian) = cdf_and_gaussian(x);
                    *dx = g * (x * INV_SQRT_2PI).mul_add(gaussian, cdf);
                }
            })
        });
    dx
}

/// The feed-forward block's backward step through GELU, in place and in one parallel pass:
/// `z` (the pre-activation) becomes `gelu(z)` and `g` (the gradient of `gelu(z)`) becomes the
/// gradient of `z`, with `Φ(z)` evaluated once for both.
pub(super) fn gelu_and_backward_in_place(z: &mut [f32], g: &mut [f32]) {
    z.par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(g.par_chunks_mut(ELEMENTS_PER_TASK))
        .for_each(|(z, g)| {
            vectorized!({
                for (z, g) in z.iter_mut().zip(g) {
                    let x = *z;
                    let (cdf, gaussian) = cdf_and_gaussian(x);
                    *g *= (x * INV_SQRT_2PI).mul_add(gaussian, cdf);
                    *z = x * cdf;
                }
            })
        });
}

/// The forward op; its backward runs [`GeluBackward`] on the input.
struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "grove-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        Ok((CpuStorage::F32(gelu_values(x)), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.apply_op2_no_bwd(&grad.contiguous()?, &GeluBackward)?,
        ))
    }
}

/// The backward op: [`gelu_backward_values`] of the input and the output's gradient.
struct GeluBackward;

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "grove-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, grad] = f32_inputs([(s1, l1), (s2, l2)], self.name())?;
        Ok((
            CpuStorage::F32(gelu_backward_values(x, grad)),
            l1.shape().clone(),
        ))
    }
}
