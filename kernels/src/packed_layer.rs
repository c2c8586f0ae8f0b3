//! Dense layers whose weight and bias travel as one `(out, in + 1)` matrix, the bias in the
//! last column: a candle custom op takes at most three inputs, so an op spanning several
//! layers takes each layer as one input. A layer followed by a post-LayerNorm carries the
//! norm's `γ` and `β` as two more columns, `(out, in + 3)`. The products read the weight
//! columns in place.

use std::mem::MaybeUninit;

use candle_core::{Device, Result, Shape, Tensor};

use super::column_sums::column_sums;
use super::direct_gradients::{Block, Route};
use super::matmul_nt::{all_threads, gemm_into, gemm_overwrite, product, Matrix};
use super::rows::{bias_rows, rows_per_task, with_f32_slices, written};
use rayon::prelude::*;

use crate::simd::vectorized;

/// A packed matrix for an op's input, and where its parameters' gradients go.
pub(super) struct Packed {
    /// The `(Σ out, in + extra)` matrix.
    pub(super) tensor: Tensor,
    /// Where the op's backward sends the matrix's gradient.
    pub(super) route: Route,
}

/// Packs `(weight (out, in), bias (out,))` layers, stacked by rows, into one
/// `(Σ out, in + 1)` matrix; `tracked` says whether another input of the op that takes it
/// is in candle's graph.
pub(super) fn pack(layers: &[(&Tensor, &Tensor)], tracked: bool) -> Result<Packed> {
    let mut blocks = Vec::with_capacity(2 * layers.len());
    let mut row = 0;
    for (w, b) in layers {
        let (out, input) = w.dims2()?;
        blocks.push(Block::new(w, (row, 0), (out, input)));
        blocks.push(Block::new(b, (row, input), (out, 1)));
        row += out;
    }
    let stride = layers
        .first()
        .map_or(Ok(1), |(w, _)| w.dim(1).map(|i| i + 1))?;
    if blocks.iter().step_by(2).any(|w| w.cols + 1 != stride) {
        candle_core::bail!("pack: the layers' weights must have the same number of columns");
    }
    packed(blocks, tracked, (row, stride), || {
        let rows = layers
            .iter()
            .map(|(w, b)| Tensor::cat(&[*w, &b.unsqueeze(1)?], 1))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&rows, 0)?.contiguous()
    })
}

/// Packs a layer `(weight (out, in), bias (out,))` and the `(gamma (out,), beta (out,))` of
/// the layer norm after it into one `(out, in + 3)` matrix, columns `[W | b | γ | β]` (with
/// `tracked` as for [`pack`]).
pub(super) fn pack_normed(
    (w, b): (&Tensor, &Tensor),
    (gamma, beta): (&Tensor, &Tensor),
    tracked: bool,
) -> Result<Packed> {
    let (out, input) = w.dims2()?;
    let columns = [b, gamma, beta];
    let mut blocks = vec![Block::new(w, (0, 0), (out, input))];
    for (i, t) in columns.iter().enumerate() {
        blocks.push(Block::new(t, (0, input + i), (out, 1)));
    }
    packed(blocks, tracked, (out, input + 3), || {
        let columns = columns
            .into_iter()
            .map(|t| t.unsqueeze(1))
            .collect::<Result<Vec<_>>>()?;
        let parts = [w, &columns[0], &columns[1], &columns[2]];
        Tensor::cat(&parts, 1)?.contiguous()
    })
}

/// The packed `(rows, stride)` matrix of `blocks`: written by Grove in one parallel pass on
/// the direct route, by `through_graph` (candle's `cat`s, which its backward follows)
/// otherwise.
fn packed(
    blocks: Vec<Block>,
    tracked: bool,
    (rows, stride): (usize, usize),
    through_graph: impl FnOnce() -> Result<Tensor>,
) -> Result<Packed> {
    let route = Route::for_blocks(blocks, tracked);
    let tensor = match &route {
        Route::Direct { blocks, .. } => assemble(blocks, (rows, stride))?,
        _ => through_graph()?,
    };
    Ok(Packed { tensor, route })
}

/// The `(rows, stride)` matrix whose every element one of `blocks` covers, each block holding
/// its parameter's values (the inverse of [`Block::cut`]).
fn assemble(blocks: &[Block], (rows, stride): (usize, usize)) -> Result<Tensor> {
    let params: Vec<&Tensor> = blocks.iter().map(|b| &b.param).collect();
    let values = with_f32_slices(&params, "pack", |params| {
        // SAFETY: the blocks tile the matrix: every row gets each block's columns.
        unsafe {
            written(rows * stride, |out| {
                out.par_chunks_mut(stride)
                    .with_min_len(rows_per_task(stride))
                    .enumerate()
                    .for_each(|(r, row)| {
                        for (block, values) in blocks.iter().zip(params) {
                            if (block.row..block.row + block.rows).contains(&r) {
                                let start = (r - block.row) * block.cols;
                                let src = &values[start..start + block.cols];
                                let dst = &mut row[block.col..block.col + block.cols];
                                for (o, &v) in dst.iter_mut().zip(src) {
                                    o.write(v);
                                }
                            }
                        }
                    })
            })
        }
    })?;
    Tensor::from_vec(values, (rows, stride), &Device::Cpu)
}

/// A layer norm's `(γ, β)`, read out of a normed layer's packed matrix.
pub(super) type NormParams = (Vec<f32>, Vec<f32>);

/// One layer's packed matrix: the weight in the first `in` columns, then the bias (and, for a
/// normed layer, `γ` and `β`).
#[derive(Clone, Copy)]
pub(super) struct Layer<'a> {
    values: &'a [f32],
    /// Output width.
    pub(super) out: usize,
    /// Input width.
    pub(super) input: usize,
    /// Columns of the packed matrix.
    stride: usize,
}

impl<'a> Layer<'a> {
    /// The layer whose `(out, in + 1)` matrix `t` holds `values`.
    pub(super) fn of(values: &'a [f32], t: &Shape) -> Result<Self> {
        Self::with_extra_columns(values, t, 1)
    }

    /// The layer and its layer norm's `(γ, β)` whose `(out, in + 3)` matrix `t` holds
    /// `values` (see [`pack_normed`]).
    pub(super) fn normed(values: &'a [f32], t: &Shape) -> Result<(Self, NormParams)> {
        let layer = Self::with_extra_columns(values, t, 3)?;
        let params = (layer.column(layer.input + 1), layer.column(layer.input + 2));
        Ok((layer, params))
    }

    fn with_extra_columns(values: &'a [f32], t: &Shape, extra: usize) -> Result<Self> {
        let (out, stride) = t.dims2()?;
        if stride <= extra || values.len() != out * stride {
            candle_core::bail!("a packed layer of shape {t:?} needs more than {extra} columns");
        }
        Ok(Self {
            values,
            out,
            input: stride - extra,
            stride,
        })
    }

    /// Column `c` of the packed matrix.
    fn column(&self, c: usize) -> Vec<f32> {
        self.values[c..]
            .iter()
            .step_by(self.stride)
            .copied()
            .collect()
    }

    /// The weight `W` `(out, in)`, read in place.
    pub(super) fn weight(&self) -> Matrix<'a> {
        Matrix {
            values: self.values,
            rows: self.out,
            cols: self.input,
            row_stride: self.stride,
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
            col_stride: self.stride,
        }
    }

    /// `x · Wᵀ + b` for the row-major `(rows, in)` matrix `x`: the bias rows written in
    /// parallel, the product added onto them.
    pub(super) fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let out = bias_rows(&self.column(self.input), rows);
        self.accumulate_product(x, rows, out)
    }

    /// `onto + x · Wᵀ + b`, computed in `onto` `(rows, out)` (the residual a sub-layer's
    /// output is added to).
    pub(super) fn apply_onto(&self, x: &[f32], rows: usize, mut onto: Vec<f32>) -> Vec<f32> {
        let bias = self.column(self.input);
        onto.par_chunks_mut(self.out * rows_per_task(self.out))
            .for_each(|block| {
                vectorized!({
                    for row in block.chunks_mut(self.out) {
                        row.iter_mut().zip(&bias).for_each(|(o, b)| *o += b);
                    }
                })
            });
        self.accumulate_product(x, rows, onto)
    }

    /// `out += x · Wᵀ`.
    fn accumulate_product(&self, x: &[f32], rows: usize, mut out: Vec<f32>) -> Vec<f32> {
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

    /// The gradient of this layer's packed matrix from its input `x` `(rows, in)` and its
    /// output's gradient `g` `(rows, out)`: `gᵀ · x` beside the column sums of `g` (a normed
    /// layer's `γ` and `β` columns are left at zero, for [`Layer::set_norm_gradient`]).
    pub(super) fn gradient(&self, x: &[f32], g: &[f32], rows: usize) -> Vec<f32> {
        let (g_t, x) = (
            Matrix::of(g, (rows, self.out), true),
            Matrix::of(x, (rows, self.input), false),
        );
        let sums = column_sums(g, self.out);
        // SAFETY: the product writes each row's first `in` columns, the loop the rest.
        unsafe {
            written(self.out * self.stride, |d| {
                gemm_overwrite(d, self.stride, g_t, x, all_threads());
                for (row, sum) in d.chunks_mut(self.stride).zip(sums) {
                    row[self.input].write(sum);
                    row[self.input + 1..].fill(MaybeUninit::new(0.0));
                }
            })
        }
    }

    /// Writes the layer norm's `[dγ; dβ]` (`2 · out` values) into a normed layer's gradient
    /// `d`.
    pub(super) fn set_norm_gradient(&self, d: &mut [f32], dnorm: &[f32]) {
        let (dgamma, dbeta) = dnorm.split_at(self.out);
        for ((row, dg), db) in d.chunks_mut(self.stride).zip(dgamma).zip(dbeta) {
            row[self.input + 1] = *dg;
            row[self.input + 2] = *db;
        }
    }

    /// The gradient of this layer's input from its output's gradient `g` `(rows, out)`:
    /// `g · W`, `(rows, in)`.
    pub(super) fn input_gradient(&self, g: &[f32], rows: usize) -> Vec<f32> {
        let g = Matrix::of(g, (rows, self.out), false);
        product(g, self.weight(), all_threads())
    }
}
