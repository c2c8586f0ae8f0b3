//! Softmax over the last dimension.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::rows::{f32_slice, fused, row_len, rows_per_task};

/// `exp(x − max) / Σ exp(x − max)` over the last dimension. Fused on f32 CPU tensors,
/// primitive ops elsewhere.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return softmax_last_dim_primitive(x);
    }
    x.contiguous()?.apply_op1(Softmax)
}

/// [`softmax_last_dim`] written with candle's primitive (differentiable) ops.
pub fn softmax_last_dim_primitive(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let exp = x.broadcast_sub(&max)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// Writes the softmax of each row of `x` into `y`.
pub(crate) fn softmax_rows(x: &[f32], y: &mut [f32], h: usize) {
    let chunk = h * rows_per_task(h);
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(y, x)| {
            for (y, x) in y.chunks_mut(h).zip(x.chunks(h)) {
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (y, x) in y.iter_mut().zip(x) {
                    *y = (x - max).exp();
                    sum += *y;
                }
                let inv = 1.0 / sum;
                y.iter_mut().for_each(|y| *y *= inv);
            }
        });
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
        Ok(Some(
            y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

/// `dx = y · (g − Σ g·y)` row by row, from the softmax output `y` and its gradient `g`.
struct SoftmaxBackward;

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
        let (y, grad) = (
            f32_slice(s1, l1, self.name())?,
            f32_slice(s2, l2, self.name())?,
        );
        let h = row_len(l1, self.name())?;
        let mut dx = vec![0f32; y.len()];
        let chunk = h * rows_per_task(h);
        dx.par_chunks_mut(chunk)
            .zip(y.par_chunks(chunk).zip(grad.par_chunks(chunk)))
            .for_each(|(dx, (y, g))| {
                for (dx, (y, g)) in dx.chunks_mut(h).zip(y.chunks(h).zip(g.chunks(h))) {
                    let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                    for ((dx, y), g) in dx.iter_mut().zip(y).zip(g) {
                        *dx = y * (g - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
