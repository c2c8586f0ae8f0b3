//! A transformer's feed-forward block, `gelu(x · W1ᵀ + b1) · W2ᵀ + b2`, as one op.
//!
//! As two ops, the block's widest activation, the `(rows, inner)` GELU output, is kept in
//! memory for the second product's backward and gets a gradient accumulation of its own
//! (candle adds every input's gradient to a fresh zero tensor). Here the op keeps only the
//! pre-activation and recomputes the GELU output in its backward, which costs one element-wise
//! pass. A custom op takes at most three inputs, so each layer's weight and bias travel as one
//! `(out, in + 1)` matrix whose last column is the bias; the products read the weight columns
//! in place.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};

use super::column_sums::column_sums;
use super::gelu::{gelu_backward_values, gelu_values};
use super::linear::{linear_gelu_primitive, linear_primitive};
use super::matmul_nt::{all_threads, gemm_into, Matrix};
use super::rows::{f32_slice, fused, with_f32};

/// `gelu(x · w1ᵀ + b1) · w2ᵀ + b2` for `x` `(M, K)`, `w1` `(F, K)`, `b1` `(F,)`, `w2`
/// `(N, F)` and `b2` `(N,)`, giving `(M, N)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn feed_forward(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
) -> Result<Tensor> {
    let fits = match (x.dims(), w1.dims(), b1.dims(), w2.dims(), b2.dims()) {
        ([_, k], [f, k1], [f1], [n, f2], [n2]) => k == k1 && f == f1 && f == f2 && n == n2,
        _ => false,
    };
    if !fits {
        candle_core::bail!(
            "feed_forward: x {:?}, w1 {:?}, b1 {:?}, w2 {:?} and b2 {:?} do not chain (want (M, K), (F, K), (F,), (N, F), (N,))",
            x.dims(),
            w1.dims(),
            b1.dims(),
            w2.dims(),
            b2.dims()
        );
    }
    if ![x, w1, b1, w2, b2].into_iter().all(fused) {
        return feed_forward_primitive(x, (w1, b1), (w2, b2));
    }
    let with_bias = |w: &Tensor, b: &Tensor| Tensor::cat(&[w, &b.unsqueeze(1)?], 1)?.contiguous();
    x.contiguous()?.apply_op3(
        &with_bias(w1, b1)?,
        &with_bias(w2, b2)?,
        FeedForward {
            pre_activation: OnceLock::new(),
        },
    )
}

/// [`feed_forward`] with candle's ops.
pub fn feed_forward_primitive(
    x: &Tensor,
    (w1, b1): (&Tensor, &Tensor),
    (w2, b2): (&Tensor, &Tensor),
) -> Result<Tensor> {
    linear_primitive(&linear_gelu_primitive(x, w1, b1)?, w2, b2)
}

/// One layer's `(out, in + 1)` matrix: the weight in the first `in` columns, the bias last.
#[derive(Clone, Copy)]
struct Layer<'a> {
    values: &'a [f32],
    out: usize,
    input: usize,
}

impl<'a> Layer<'a> {
    /// The layer whose `(out, in + 1)` matrix `t` holds `values`.
    fn of(values: &'a [f32], t: &Shape) -> Result<Self> {
        let (out, columns) = t.dims2()?;
        Ok(Self {
            values,
            out,
            input: columns - 1,
        })
    }

    /// The weight `W` `(out, in)`, read in place.
    fn weight(&self) -> Matrix<'a> {
        Matrix {
            values: self.values,
            rows: self.out,
            cols: self.input,
            row_stride: self.input + 1,
            col_stride: 1,
        }
    }

    /// `Wᵀ` `(in, out)`, read in place.
    fn weight_transposed(&self) -> Matrix<'a> {
        Matrix {
            values: self.values,
            rows: self.input,
            cols: self.out,
            row_stride: 1,
            col_stride: self.input + 1,
        }
    }

    /// `rows` rows that each hold the bias.
    fn bias_rows(&self, rows: usize) -> Vec<f32> {
        let stride = self.input + 1;
        let bias: Vec<f32> = (0..self.out)
            .map(|j| self.values[j * stride + self.input])
            .collect();
        bias.repeat(rows)
    }

    /// `x · Wᵀ + b` for the row-major `(rows, in)` matrix `x`.
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = self.bias_rows(rows);
        let x = Matrix::of(x, (rows, self.input), false);
        gemm_into(
            &mut out,
            self.out,
            x,
            self.weight_transposed(),
            true,
            all_threads(),
        );
        out
    }

    /// The gradient of this layer's `(out, in + 1)` matrix from its input `x` `(rows, in)`
    /// and its output's gradient `g` `(rows, out)`: `gᵀ · x` beside the column sums of `g`.
    fn gradient(&self, x: &[f32], g: &[f32], rows: usize) -> Vec<f32> {
        let stride = self.input + 1;
        let mut d = vec![0f32; self.out * stride];
        let (g_t, x) = (
            Matrix::of(g, (rows, self.out), true),
            Matrix::of(x, (rows, self.input), false),
        );
        gemm_into(&mut d, stride, g_t, x, false, all_threads());
        for (j, sum) in column_sums(g, self.out).into_iter().enumerate() {
            d[j * stride + self.input] = sum;
        }
        d
    }
}

/// The op; the forward leaves the pre-activation `x · W1ᵀ + b1` for the backward.
struct FeedForward {
    pre_activation: OnceLock<Vec<f32>>,
}

impl CustomOp3 for FeedForward {
    fn name(&self) -> &'static str {
        "grove-feed-forward"
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
        let x = f32_slice(s1, l1, name)?;
        let first = Layer::of(f32_slice(s2, l2, name)?, l2.shape())?;
        let second = Layer::of(f32_slice(s3, l3, name)?, l3.shape())?;
        let rows = l1.shape().dims2()?.0;
        let z = first.apply(x, rows);
        let out = second.apply(&gelu_values(&z), rows);
        if self.pre_activation.set(z).is_err() {
            candle_core::bail!("{name}: one op value ran forward twice");
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, second.out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        first: &Tensor,
        second: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let Some(z) = self.pre_activation.get() else {
            candle_core::bail!("{name}: backward before forward");
        };
        let grad = grad.contiguous()?;
        let rows = x.dim(0)?;
        let tensors = [x, first, second, &grad];
        let (dx, d_first, d_second) = with_f32(tensors, name, |[x_values, w1, w2, g]| {
            let first_layer = Layer::of(w1, first.shape())?;
            let second_layer = Layer::of(w2, second.shape())?;
            let h = gelu_values(z);
            let d_second = second_layer.gradient(&h, g, rows);
            // ∂h = g · W2, then ∂z = ∂h ⊙ gelu'(z).
            let mut dh = vec![0f32; rows * second_layer.input];
            let g = Matrix::of(g, (rows, second_layer.out), false);
            let w2 = second_layer.weight();
            gemm_into(&mut dh, second_layer.input, g, w2, false, all_threads());
            let dz = gelu_backward_values(z, &dh);
            let d_first = first_layer.gradient(x_values, &dz, rows);
            let mut dx = vec![0f32; rows * first_layer.input];
            let dz = Matrix::of(&dz, (rows, first_layer.out), false);
            let w1 = first_layer.weight();
            gemm_into(&mut dx, first_layer.input, dz, w1, false, all_threads());
            Ok::<_, candle_core::Error>((dx, d_first, d_second))
        })??;
        let cpu = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), &cpu)?),
            Some(Tensor::from_vec(d_first, first.shape(), &cpu)?),
            Some(Tensor::from_vec(d_second, second.shape(), &cpu)?),
        ))
    }
}
