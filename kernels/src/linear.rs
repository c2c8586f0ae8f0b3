//! A dense layer's `x · Wᵀ + b`, optionally followed by the exact GELU or a ReLU, as one op.
//! The product is written onto rows that already hold the bias (one gemm that accumulates), so
//! there is no separate pass to add the bias forward and no intermediate product whose gradient
//! candle would accumulate backward; the backward is two products and the bias's column sums.
//! With GELU, the op keeps the pre-activation for its backward (the memory a separate GELU
//! op's input held), so the feed-forward block's widest activation gets no gradient
//! accumulation of its own either. A ReLU's backward needs only where its output is positive,
//! which the op's own output tells, so that op keeps nothing.

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::column_sums::ColumnSums;
use super::gelu::{gelu_backward_values, gelu_erf_primitive, gelu_values};
use super::kept::Kept;
use super::matmul_nt::{all_threads, gemm_into, matmul_nt_primitive, Matrix, Product};
use super::rows::{bias_rows, f32_inputs, fused, output_gradient, rows_per_task, with_f32};

/// `x · wᵀ + b` for `x` `(M, K)`, `w` `(N, K)` (a dense layer's `(out, in)` weight) and `b`
/// `(N,)`, giving `(M, N)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_shapes(x, w, b)?;
    if !(fused(x) && fused(w) && fused(b)) {
        return linear_primitive(x, w, b);
    }
    apply(x, w, b, Linear::Identity)
}

/// [`linear`] with candle's matmul and broadcast add.
pub fn linear_primitive(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_nt_primitive(x, w)?.broadcast_add(b)
}

/// `gelu(x · wᵀ + b)` (exact GELU), shapes as for [`linear`]. Fused on f32 CPU tensors.
pub fn linear_gelu(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_shapes(x, w, b)?;
    if !(fused(x) && fused(w) && fused(b)) {
        return linear_gelu_primitive(x, w, b);
    }
    apply(
        x,
        w,
        b,
        Linear::Gelu {
            pre_activation: Kept::default(),
        },
    )
}

/// `relu(x · wᵀ + b)`, shapes as for [`linear`]. Fused on f32 CPU tensors. The gradient passes
/// where the output is positive (PyTorch's and TensorFlow's rule; candle's own `relu` also
/// passes it where the pre-activation is exactly 0).
pub fn linear_relu(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_shapes(x, w, b)?;
    if !(fused(x) && fused(w) && fused(b)) {
        return linear_relu_primitive(x, w, b);
    }
    apply(x, w, b, Linear::Relu)
}

/// [`linear_relu`] with candle's ops.
pub fn linear_relu_primitive(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    linear_primitive(x, w, b)?.relu()
}

/// [`linear_gelu`] with candle's ops.
pub fn linear_gelu_primitive(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    gelu_erf_primitive(&linear_primitive(x, w, b)?)
}

fn check_shapes(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<()> {
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
    Ok(())
}

fn apply(x: &Tensor, w: &Tensor, b: &Tensor, op: Linear) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

/// `x · wᵀ + b` for `m` rows of `x`, the product accumulated onto rows that start as the bias.
pub(super) fn affine(x: &[f32], w: &[f32], b: &[f32], m: usize) -> Vec<f32> {
    let n = b.len();
    let k = x.len() / m;
    let mut out = bias_rows(b, m);
    gemm_into(
        &mut out,
        n,
        Matrix::of(x, (m, k), false),
        Matrix::of(w, (n, k), true),
        true,
        all_threads(),
    );
    out
}

/// The op, by the activation applied to the product.
enum Linear {
    Identity,
    /// ReLU; the backward masks the gradient by the op's output.
    Relu,
    /// Exact GELU; the forward leaves the pre-activation `x · wᵀ + b` here for the backward.
    Gelu {
        pre_activation: Kept,
    },
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        match self {
            Linear::Identity => "grove-linear",
            Linear::Relu => "grove-linear-relu",
            Linear::Gelu { .. } => "grove-linear-gelu",
        }
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
        let [x, w, b] = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], name)?;
        let (m, n) = (l1.shape().dims2()?.0, b.len());
        let out = affine(x, w, b, m);
        let out = match self {
            Linear::Identity => out,
            Linear::Relu => {
                let mut out = out;
                out.par_iter_mut()
                    .with_min_len(rows_per_task(1))
                    .for_each(|v| *v = v.max(0.0));
                out
            }
            Linear::Gelu { pre_activation } => {
                let activated = gelu_values(&out);
                pre_activation.keep(out);
                activated
            }
        };
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = output_gradient(grad, out, self.name())?;
        let rows = x.dim(0)?;
        // The gradient of the pre-activation.
        let grad = match self {
            Linear::Identity => grad,
            Linear::Relu => {
                let dz = with_f32([out, &grad], self.name(), |[y, g]| {
                    g.par_iter()
                        .zip(y.par_iter())
                        .with_min_len(rows_per_task(1))
                        .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
                        .collect::<Vec<f32>>()
                })?;
                Tensor::from_vec(dz, grad.shape(), &Device::Cpu)?
            }
            Linear::Gelu { pre_activation } => {
                let dz = with_f32([x, w, b, &grad], self.name(), |[x, w, b, g]| {
                    let z = pre_activation.take_or(|| affine(x, w, b, rows));
                    gelu_backward_values(&z, g)
                })?;
                Tensor::from_vec(dz, grad.shape(), &Device::Cpu)?
            }
        };
        let product = |transpose_lhs| Product {
            transpose_lhs,
            transpose_rhs: false,
        };
        // z = x · wᵀ + b: ∂x = g · w, ∂w = gᵀ · x, ∂b = the column sums of g.
        let dx = grad.apply_op2_no_bwd(w, &product(false))?;
        let dw = grad.apply_op2_no_bwd(x, &product(true))?;
        let db = grad.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}
