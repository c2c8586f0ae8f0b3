//! Layer normalisation over the last dimension: `y = (x − mean) / sqrt(var + eps) · γ + β`.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::simd::vectorized;

use super::fast_math::{sum, sum_map};
use super::rows::{f32_inputs, fused, par_map, row_len, rows_per_task};

/// Normalises `x` over its last dimension, then scales by `gamma` and shifts by `beta` (both
/// of the last dimension's length). Fused on f32 CPU tensors, primitive ops elsewhere.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    if !(fused(x) && fused(gamma) && fused(beta)) {
        return layer_norm_primitive(x, gamma, beta, eps);
    }
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

/// [`layer_norm`] written with candle's primitive (differentiable) ops.
pub fn layer_norm_primitive(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let inv_std = (var + eps)?.sqrt()?.recip()?;
    centered
        .broadcast_mul(&inv_std)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)
}

/// Mean and `1/sqrt(var + eps)` of one row.
#[inline(always)]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let var = sum_map(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The forward op; its backward runs [`LayerNormBackward`].
struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "grove-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let [x, gamma, beta] = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], name)?;
        let h = row_len(l1, name)?;
        check_params(h, gamma, beta, name)?;
        Ok((
            CpuStorage::F32(normalize(x, gamma, beta, self.eps)),
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dparams) = backward(x, gamma, grad, self.eps)?;
        Ok((Some(dx), Some(dparams.get(0)?), Some(dparams.get(1)?)))
    }
}

/// `(x − mean) · rstd · γ + β` row by row, rows of `gamma.len()`, in parallel.
fn normalize(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let mut y = par_map(x, |v| v);
    normalize_in_place(&mut y, gamma.len(), Some((gamma, beta)), eps);
    y
}

/// Normalises each row of `h` values in place, in parallel: `x̂ = (x − mean) · rstd`, or
/// `x̂ · γ + β` with `affine = Some((γ, β))`. Returns each row's `rstd = 1/sqrt(var + eps)`.
pub(super) fn normalize_in_place(
    values: &mut [f32],
    h: usize,
    affine: Option<(&[f32], &[f32])>,
    eps: f32,
) -> Vec<f32> {
    let per_task = rows_per_task(h);
    let mut rstds = vec![0f32; values.len() / h];
    values
        .par_chunks_mut(h * per_task)
        .zip(rstds.par_chunks_mut(per_task))
        .for_each(|(block, rstds)| {
            vectorized!({
                for (row, rstd_out) in block.chunks_mut(h).zip(rstds) {
                    let (mean, rstd) = row_stats(row, eps);
                    *rstd_out = rstd;
                    match affine {
                        Some((gamma, beta)) => {
                            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                                *v = (*v - mean) * rstd * g + b;
                            }
                        }
                        None => row.iter_mut().for_each(|v| *v = (*v - mean) * rstd),
                    }
                }
            })
        });
    rstds
}

/// A layer norm's backward from the normalised rows `x̂` (rows of `gamma.len()`), each row's
/// `rstd` and the output's gradient `grad`: turns `x̂` into the input's gradient in place,
/// `dx = rstd · (g·γ − mean(g·γ) − x̂ · mean(g·γ·x̂))`, and returns `[dγ; dβ]` (`dγ = Σ g·x̂`,
/// `dβ = Σ g` over rows). Rows run in parallel blocks whose sums are added in block order, so
/// `dγ` and `dβ` have the same bits on every run (rayon's `reduce` pairs blocks by how the
/// work happened to be split).
pub(super) fn backward_in_place(
    xhat: &mut [f32],
    rstd: &[f32],
    grad: &[f32],
    gamma: &[f32],
) -> Vec<f32> {
    let h = gamma.len();
    let per_task = rows_per_task(h);
    let partials = xhat
        .par_chunks_mut(h * per_task)
        .zip(rstd.par_chunks(per_task))
        .zip(grad.par_chunks(h * per_task))
        .map(|((block, rstds), grad)| {
            vectorized!({
                let mut sums = vec![0f32; 2 * h];
                let (dgamma, dbeta) = sums.split_at_mut(h);
                for ((row, &rstd), g) in block.chunks_mut(h).zip(rstds).zip(grad.chunks(h)) {
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for ((xhat, g), gamma) in row.iter().zip(g).zip(gamma) {
                        let gy = g * gamma;
                        m1 += gy;
                        m2 += gy * xhat;
                    }
                    let (m1, m2) = (m1 / h as f32, m2 / h as f32);
                    let params = gamma.iter().zip(dgamma.iter_mut().zip(dbeta.iter_mut()));
                    for ((v, g), (gamma, (dgamma, dbeta))) in row.iter_mut().zip(g).zip(params) {
                        let xhat = *v;
                        *dgamma += g * xhat;
                        *dbeta += g;
                        *v = rstd * (g * gamma - m1 - xhat * m2);
                    }
                }
                sums
            })
        })
        .collect::<Vec<_>>();
    let mut sums = vec![0f32; 2 * h];
    for partial in partials {
        sums.iter_mut().zip(partial).for_each(|(d, p)| *d += p);
    }
    sums
}

/// The gradient of a layer norm's input `x` and, as `(2, H)`, of `[γ; β]`, from the output's
/// gradient.
fn backward(x: &Tensor, gamma: &Tensor, grad: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let h = x.dim(D::Minus1)?;
    let rows = x.elem_count() / h;
    let packed = x
        .apply_op3_no_bwd(gamma, &grad.contiguous()?, &LayerNormBackward { eps })?
        .reshape((rows + 2, h))?;
    let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
    Ok((dx, packed.narrow(0, rows, 2)?))
}

/// `layer_norm(x + residual, gamma, beta, eps)`: a post-LayerNorm block's residual sum and
/// normalisation as one op, so the sum gets no gradient accumulation of its own (and is not
/// kept for the backward). Fused on f32 CPU tensors, candle's add and [`layer_norm`]
/// elsewhere.
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    if x.dims() != residual.dims() {
        candle_core::bail!(
            "add_layer_norm: x {:?} and the residual {:?} differ in shape",
            x.dims(),
            residual.dims()
        );
    }
    if !(fused(x) && fused(residual) && fused(gamma) && fused(beta)) {
        return layer_norm(&(x + residual)?, gamma, beta, eps);
    }
    // γ and β travel as one (2·H,) input: a custom op takes at most three.
    let params = Tensor::cat(&[gamma, beta], 0)?;
    x.contiguous()?.apply_op3(
        &residual.contiguous()?,
        &params,
        AddLayerNorm { eps: eps as f32 },
    )
}

/// The op of [`add_layer_norm`]. Its backward adds `x + residual` again rather than keeping
/// the sum: candle's graph holds both inputs anyway.
struct AddLayerNorm {
    eps: f32,
}

impl CustomOp3 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "grove-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let [x, residual, params] = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], name)?;
        let h = row_len(l1, name)?;
        let (gamma, beta) = params.split_at(params.len() / 2);
        check_params(h, gamma, beta, name)?;
        let mut sum = vec![0f32; x.len()];
        sum.par_chunks_mut(h * rows_per_task(h))
            .zip(x.par_chunks(h * rows_per_task(h)))
            .zip(residual.par_chunks(h * rows_per_task(h)))
            .for_each(|((s, x), r)| {
                vectorized!({
                    s.iter_mut()
                        .zip(x)
                        .zip(r)
                        .for_each(|((s, x), r)| *s = x + r)
                })
            });
        normalize_in_place(&mut sum, h, Some((gamma, beta)), self.eps);
        Ok((CpuStorage::F32(sum), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        residual: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let sum = (x.detach() + residual.detach())?;
        let gamma = params.narrow(0, 0, params.elem_count() / 2)?;
        let (dsum, dparams) = backward(&sum, &gamma, grad, self.eps)?;
        Ok((Some(dsum.clone()), Some(dsum), Some(dparams.flatten_all()?)))
    }
}

fn check_params(h: usize, gamma: &[f32], beta: &[f32], op: &str) -> Result<()> {
    if gamma.len() != h || beta.len() != h {
        candle_core::bail!(
            "{op}: gamma ({}) and beta ({}) must have the last dimension's length {h}",
            gamma.len(),
            beta.len()
        );
    }
    Ok(())
}

/// The backward kernel: from `x`, `gamma` and the output gradient, the rows of `dx` followed
/// by one row `dγ` and one row `dβ` (see [`backward_in_place`]).
struct LayerNormBackward {
    eps: f32,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "grove-layer-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let [x, gamma, grad] = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], name)?;
        let h = row_len(l1, name)?;
        let rows = x.len() / h;
        let mut out = Vec::with_capacity((rows + 2) * h);
        out.extend_from_slice(x);
        let rstd = normalize_in_place(&mut out, h, None, self.eps);
        let dparams = backward_in_place(&mut out, &rstd, grad, gamma);
        out.extend_from_slice(&dparams);
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, h))))
    }
}
