//! Adding a bias row to every row of a matrix: one parallel pass forward; backward, the
//! gradient passes through to the matrix and the bias gets the column sums, computed in
//! parallel row blocks added in order (candle reduces over rows on one thread).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::rows::{f32_slice, fused, row_len, rows_per_task};

/// `x + bias` with `bias` `(N,)` added to every row of `x` `(…, N)`. Fused on f32 CPU tensors,
/// candle's broadcast add elsewhere.
pub fn add_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let n = x.dim(candle_core::D::Minus1)?;
    if bias.dims() != [n] {
        candle_core::bail!(
            "add_bias: bias {:?} does not match rows of {n}",
            bias.dims()
        );
    }
    if !(fused(x) && fused(bias)) {
        return add_bias_primitive(x, bias);
    }
    x.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
}

/// [`add_bias`] with candle's broadcast add.
pub fn add_bias_primitive(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.broadcast_add(bias)
}

struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "grove-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = (
            f32_slice(s1, l1, self.name())?,
            f32_slice(s2, l2, self.name())?,
        );
        let n = row_len(l1, self.name())?;
        let mut y = vec![0f32; x.len()];
        let chunk = n * rows_per_task(n);
        y.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(n).zip(x.chunks(n)) {
                    for ((y, x), b) in y.iter_mut().zip(x).zip(bias) {
                        *y = x + b;
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dbias = grad.contiguous()?.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(grad.clone()), Some(dbias)))
    }
}

/// The sums of the columns of a `(…, N)` tensor: `(N,)`.
pub(super) struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "grove-column-sums"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(storage, layout, self.name())?;
        let n = row_len(layout, self.name())?;
        let partials: Vec<Vec<f32>> = g
            .par_chunks(n * rows_per_task(n))
            .map(|block| {
                let mut sums = vec![0f32; n];
                for row in block.chunks(n) {
                    sums.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                }
                sums
            })
            .collect();
        let mut sums = vec![0f32; n];
        for partial in partials {
            sums.iter_mut().zip(partial).for_each(|(s, x)| *s += x);
        }
        Ok((CpuStorage::F32(sums), Shape::from(n)))
    }
}
