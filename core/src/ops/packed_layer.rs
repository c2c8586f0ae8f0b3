//! Dense layers whose weight and bias travel as one `(out, in + 1)` matrix, the bias in the
//! last column: a candle custom op takes at most three inputs, so an op spanning several
//! layers takes each layer as one input. The products read the weight columns in place.

use candle_core::{Result, Shape, Tensor};

use super::column_sums::column_sums;
use super::matmul_nt::{all_threads, gemm_into, Matrix};

/// Packs `(weight (out, in), bias (out,))` layers, stacked by rows, into one
/// `(Σ out, in + 1)` matrix (their gradients flow back through candle's `cat`).
pub(super) fn pack(layers: &[(&Tensor, &Tensor)]) -> Result<Tensor> {
    let rows = layers
        .iter()
        .map(|(w, b)| Tensor::cat(&[*w, &b.unsqueeze(1)?], 1))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&rows, 0)?.contiguous()
}

/// One layer's `(out, in + 1)` matrix: the weight in the first `in` columns, the bias last.
#[derive(Clone, Copy)]
pub(super) struct Layer<'a> {
    values: &'a [f32],
    /// Output width.
    pub(super) out: usize,
    /// Input width.
    pub(super) input: usize,
}

impl<'a> Layer<'a> {
    /// The layer whose `(out, in + 1)` matrix `t` holds `values`.
    pub(super) fn of(values: &'a [f32], t: &Shape) -> Result<Self> {
        let (out, columns) = t.dims2()?;
        Ok(Self {
            values,
            out,
            input: columns - 1,
        })
    }

    /// The weight `W` `(out, in)`, read in place.
    pub(super) fn weight(&self) -> Matrix<'a> {
        Matrix {
            values: self.values,
            rows: self.out,
            cols: self.input,
            row_stride: self.input + 1,
            col_stride: 1,
        }
    }

    /// `Wᵀ` `(in, out)`, read in place.
    pub(super) fn weight_transposed(&self) -> Matrix<'a> {
        Matrix {
            values: self.values,
            rows: self.input,
            cols: self.out,
            row_stride: 1,
            col_stride: self.input + 1,
        }
    }

    /// `rows` rows that each hold the bias.
    pub(super) fn bias_rows(&self, rows: usize) -> Vec<f32> {
        let stride = self.input + 1;
        let bias: Vec<f32> = (0..self.out)
            .map(|j| self.values[j * stride + self.input])
            .collect();
        bias.repeat(rows)
    }

    /// `x · Wᵀ + b` for the row-major `(rows, in)` matrix `x`.
    pub(super) fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
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
    pub(super) fn gradient(&self, x: &[f32], g: &[f32], rows: usize) -> Vec<f32> {
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

    /// The gradient of this layer's input from its output's gradient `g` `(rows, out)`:
    /// `g · W`, `(rows, in)`.
    pub(super) fn input_gradient(&self, g: &[f32], rows: usize) -> Vec<f32> {
        let mut dx = vec![0f32; rows * self.input];
        let g = Matrix::of(g, (rows, self.out), false);
        gemm_into(&mut dx, self.input, g, self.weight(), false, all_threads());
        dx
    }
}
