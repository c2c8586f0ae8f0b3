//! A dense layer's `x · Wᵀ + b` as one op. The product is written onto rows that already hold
//! the bias (one gemm that accumulates), so there is no separate pass to add the bias forward
//! and no intermediate product whose gradient candle would accumulate backward; the backward
//! is two products and the bias's column sums.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::column_sums::ColumnSums;
use super::matmul_nt::{all_threads, gemm_into, matmul_nt_primitive, Matrix, Product};
use super::rows::{f32_slice, fused};

/// `x · wᵀ + b` for `x` `(M, K)`, `w` `(N, K)` (a dense layer's `(out, in)` weight) and `b`
/// `(N,)`, giving `(M, N)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fits = match (x.dims(), w.dims(), b.dims()) {
        ([_, k], [n, k2], [n2]) => k == k2 && n == n2,
        _ => false,
    };
    if !fits {
        candle_core::bail!(
            "linear: x {:?}, w {:?} and b {:?} do not give x · wᵀ + b (want (M, K), (N, K), (N,))",
            x.dims(),
            w.dims(),
            b.dims()
        );
    }
    if !(fused(x) && fused(w) && fused(b)) {
        return linear_primitive(x, w, b);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}

/// [`linear`] with candle's matmul and broadcast add.
pub fn linear_primitive(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_nt_primitive(x, w)?.broadcast_add(b)
}

struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "grove-linear"
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
        let (x, w, b) = (
            f32_slice(s1, l1, name)?,
            f32_slice(s2, l2, name)?,
            f32_slice(s3, l3, name)?,
        );
        let ((m, k), n) = (l1.shape().dims2()?, b.len());
        // Every row starts as the bias; the product is added onto it.
        let mut out = b.repeat(m);
        gemm_into(
            &mut out,
            n,
            Matrix::of(x, (m, k), false),
            Matrix::of(w, (n, k), true),
            true,
            all_threads(),
        );
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let product = |transpose_lhs| Product {
            transpose_lhs,
            transpose_rhs: false,
        };
        // out = x · wᵀ + b: ∂x = g · w, ∂w = gᵀ · x, ∂b = the column sums of g.
        let dx = grad.apply_op2_no_bwd(w, &product(false))?;
        let dw = grad.apply_op2_no_bwd(x, &product(true))?;
        let db = grad.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}
