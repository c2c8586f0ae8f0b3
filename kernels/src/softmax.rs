//! Softmax over the last dimension, and attention's `softmax(scale · scores + mask bias)`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::simd::vectorized;

use super::fast_math::{dot, exp, max, sum};
use super::rows::{f32_inputs, f32_slice, fused, row_len, rows_per_task};

/// `exp(x − max) / Σ exp(x − max)` over the last dimension. Fused on f32 CPU tensors,
/// primitive ops elsewhere.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return softmax_last_dim_primitive(x);
    }
    x.contiguous()?.apply_op1(Softmax)
}

/// Attention probabilities `softmax(scale · scores + bias)` over the last dimension, in one
/// pass: `scores` is `(B, …, K)` and `bias` `(B, 1, …, 1, K)` (an additive mask, one row per
/// batch item, broadcast over the other dimensions). The gradient flows to `scores` only: the
/// bias is a constant mask. Fused on f32 CPU tensors, primitive ops elsewhere.
pub fn masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    let batch = scores.dim(0)?;
    let keys = scores.dim(D::Minus1)?;
    if bias.dim(0)? != batch || bias.elem_count() != batch * keys {
        candle_core::bail!(
            "masked softmax: bias of shape {:?} is not one row of {keys} per batch item of \
             scores {:?}",
            bias.dims(),
            scores.dims()
        );
    }
    if !(fused(scores) && fused(bias)) {
        return masked_softmax_primitive(scores, bias, scale);
    }
    let bias = bias.detach().contiguous()?;
    scores.contiguous()?.apply_op2(
        &bias,
        MaskedSoftmax {
            scale: scale as f32,
        },
    )
}

/// [`masked_softmax`] written with candle's primitive (differentiable) ops.
pub fn masked_softmax_primitive(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    softmax_last_dim_primitive(&(scores * scale)?.broadcast_add(&bias.detach())?)
}

/// [`softmax_last_dim`] written with candle's primitive (differentiable) ops.
pub fn softmax_last_dim_primitive(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let exp = x.broadcast_sub(&max)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// Turns a row of logits whose maximum is `max` into its softmax, in place.
#[inline(always)]
fn exp_normalize(row: &mut [f32], max: f32) {
    row.iter_mut().for_each(|y| *y = exp(*y - max));
    let inv = 1.0 / sum(row);
    row.iter_mut().for_each(|y| *y *= inv);
}

/// Replaces a row of scores `x` with `softmax(scale · x + bias)`.
pub(super) fn masked_softmax_in_place(row: &mut [f32], bias: &[f32], scale: f32) {
    vectorized!({
        for (y, b) in row.iter_mut().zip(bias) {
            *y = scale * *y + b;
        }
        let max = max(row);
        exp_normalize(row, max);
    })
}

/// Replaces a row of output gradients `g` of `y = softmax(scale · x + …)` with the gradient
/// of `x`: `scale · y · (g − Σ g·y)`.
pub(super) fn softmax_backward_in_place(g: &mut [f32], y: &[f32], scale: f32) {
    vectorized!({
        let dot = dot(y, g);
        for (g, y) in g.iter_mut().zip(y) {
            *g = scale * y * (*g - dot);
        }
    })
}

/// Writes the softmax of each row of `x` into `y`.
pub(crate) fn softmax_rows(x: &[f32], y: &mut [f32], h: usize) {
    let block = h * rows_per_task(h);
    y.par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .for_each(|(y, x)| {
            y.copy_from_slice(x);
            softmax_block(y, h);
        });
}

/// Replaces each row of `h` logits in `values` with its softmax.
pub(crate) fn softmax_rows_in_place(values: &mut [f32], h: usize) {
    values
        .par_chunks_mut(h * rows_per_task(h))
        .for_each(|block| softmax_block(block, h));
}

/// The softmax of each row of `h` logits in one task's block, in place.
fn softmax_block(block: &mut [f32], h: usize) {
    vectorized!({
        for row in block.chunks_mut(h) {
            let max = max(row);
            exp_normalize(row, max);
        }
    })
}

/// The forward op; its backward runs [`SoftmaxBackward`] on the output.
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "grove-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let h = row_len(layout, self.name())?;
        let mut y = vec![0f32; x.len()];
        softmax_rows(x, &mut y, h);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let backward = SoftmaxBackward { scale: 1.0 };
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &backward)?))
    }
}

/// The forward op of [`masked_softmax`]; its backward runs [`SoftmaxBackward`] scaled.
struct MaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "grove-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [scores, bias] = f32_inputs([(s1, l1), (s2, l2)], self.name())?;
        let keys = row_len(l1, self.name())?;
        // Rows of `scores` per batch item; item `b`'s bias row is `bias[b·K .. (b+1)·K]`.
        let rows_per_item = scores.len() / bias.len().max(1);
        let rows_per_chunk = rows_per_task(keys);
        let mut y = vec![0f32; scores.len()];
        y.par_chunks_mut(keys * rows_per_chunk)
            .zip(scores.par_chunks(keys * rows_per_chunk))
            .enumerate()
            .for_each(|(task, (y, x))| {
                for (i, (y, x)) in y.chunks_mut(keys).zip(x.chunks(keys)).enumerate() {
                    let item = (task * rows_per_chunk + i) / rows_per_item;
                    y.copy_from_slice(x);
                    masked_softmax_in_place(y, &bias[item * keys..(item + 1) * keys], self.scale);
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let backward = SoftmaxBackward { scale: self.scale };
        let dscores = y.apply_op2_no_bwd(&grad.contiguous()?, &backward)?;
        Ok((Some(dscores), None))
    }
}

/// `dx = scale · y · (g − Σ g·y)` row by row, from the softmax output `y` and its gradient
/// `g` (`scale` is the factor the softmax's input was multiplied by, 1 for a plain softmax).
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "grove-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [y, grad] = f32_inputs([(s1, l1), (s2, l2)], self.name())?;
        let h = row_len(l1, self.name())?;
        let mut dx = vec![0f32; y.len()];
        let chunk = h * rows_per_task(h);
        dx.par_chunks_mut(chunk)
            .zip(y.par_chunks(chunk).zip(grad.par_chunks(chunk)))
            .for_each(|(dx, (y, g))| {
                for (dx, (y, g)) in dx.chunks_mut(h).zip(y.chunks(h).zip(g.chunks(h))) {
                    dx.copy_from_slice(g);
                    softmax_backward_in_place(dx, y, self.scale);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
