//! `a · bᵀ` as one differentiable op: the product of a dense layer (`x · Wᵀ` with `W` stored
//! `(out, in)`), of a tied decoder (`h · Eᵀ`) and of attention's scores (`q · kᵀ`).
//!
//! Written as `a.matmul(&b.t())`, candle's graph holds a transpose node for `bᵀ`, so the
//! backward accumulates `b`'s gradient twice, through a fresh zero tensor each time, the second
//! time element by element through the transposed view. Here the backward computes `∂a = g · b`
//! and `∂b = gᵀ · a` directly in `a`'s and `b`'s layouts. Batched products (attention's
//! `(B, NH, S, DH)` heads, where attention dropout keeps the scores separate) run one
//! single-threaded gemm per batch entry side by side, which keeps both cores busy on products
//! too small to split well; a single product is split by gemm itself.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::rows::{f32_inputs, fused, written};

/// `a · bᵀ` over the last two dimensions: `a` `(…, M, K)`, `b` `(…, N, K)` with the same
/// leading dimensions, giving `(…, M, N)`. Fused on f32 CPU tensors, candle's
/// `a.matmul(&b.t())` elsewhere.
pub fn matmul_nt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    if ra < 2
        || ra != rb
        || a.dims()[..ra - 2] != b.dims()[..rb - 2]
        || a.dim(ra - 1)? != b.dim(rb - 1)?
    {
        candle_core::bail!(
            "matmul_nt: shapes {:?} and {:?} do not give a · bᵀ (want (…, M, K) and (…, N, K))",
            a.dims(),
            b.dims()
        );
    }
    if !(fused(a) && fused(b)) {
        return matmul_nt_primitive(a, b);
    }
    a.contiguous()?.apply_op2(
        &b.contiguous()?,
        Product {
            transpose_lhs: false,
            transpose_rhs: true,
        },
    )
}

/// [`matmul_nt`] with candle's matmul of `b`'s transposed view.
pub fn matmul_nt_primitive(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.matmul(&b.t()?)
}

/// The batched product `op(lhs) · op(rhs)` of contiguous f32 tensors, where `op` transposes the
/// last two dimensions when asked. Its backward is [`matmul_nt`]'s (the only product that is
/// differentiated); the other forms compute that backward and [`super::linear`]'s.
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub(super) transpose_lhs: bool,
    pub(super) transpose_rhs: bool,
}

/// One matrix of a gemm: `rows × cols` elements of a slice, at the given element strides.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    pub(super) values: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `op(m)` of the `(r, c)` row-major matrix `values`: itself, or its transpose read in place.
    pub(super) fn of(values: &'a [f32], (r, c): (usize, usize), transpose: bool) -> Self {
        let (rows, cols, row_stride, col_stride) = if transpose {
            (c, r, 1, c)
        } else {
            (r, c, c, 1)
        };
        Self {
            values,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// Whether every element the strides reach lies in `values`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.values.len()
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` with `accumulate`, for a `lhs.rows × rhs.cols`
/// destination whose rows start `dst_row_stride` elements apart in `dst`.
pub(super) fn gemm_into(
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    parallelism: Parallelism,
) {
    // SAFETY: an f32 is a valid MaybeUninit<f32>, and gemm writes only f32 values.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    gemm_raw(dst, dst_row_stride, lhs, rhs, accumulate, parallelism)
}

/// `dst = lhs · rhs` into memory that need not be initialised: without accumulating, gemm
/// writes every element of the `lhs.rows × rhs.cols` destination (zeros for an empty sum)
/// and reads none.
pub(super) fn gemm_overwrite(
    dst: &mut [MaybeUninit<f32>],
    dst_row_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    parallelism: Parallelism,
) {
    gemm_raw(dst, dst_row_stride, lhs, rhs, false, parallelism)
}

/// The product `lhs · rhs` as a new row-major matrix, written once by gemm (not zeroed first).
pub(super) fn product(lhs: Matrix, rhs: Matrix, parallelism: Parallelism) -> Vec<f32> {
    let (rows, cols) = (lhs.rows, rhs.cols);
    // SAFETY: the product writes every element of the `rows × cols` matrix.
    unsafe {
        written(rows * cols, |dst| {
            gemm_overwrite(dst, cols, lhs, rhs, parallelism)
        })
    }
}

/// The gemm call behind [`gemm_into`] and [`gemm_overwrite`].
fn gemm_raw(
    dst: &mut [MaybeUninit<f32>],
    dst_row_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    let dst_fits = m == 0 || n == 0 || (m - 1) * dst_row_stride + n <= dst.len();
    assert!(
        rhs.rows == k && n <= dst_row_stride && dst_fits && lhs.in_bounds() && rhs.in_bounds(),
        "gemm_into: operands do not fit"
    );
    // SAFETY: the assertion keeps every element gemm reads or writes inside the slices; gemm
    // reads the destination only when accumulating, which only `gemm_into` (initialised
    // memory) asks for.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// All the compute threads for one large product; only the calling thread inside a
/// [`crate::parallelism::with_serial_products`] scope.
pub(super) fn all_threads() -> Parallelism {
    if crate::parallelism::serial_products() {
        Parallelism::None
    } else {
        Parallelism::Rayon(rayon::current_num_threads())
    }
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "grove-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [lhs, rhs] = f32_inputs([(s1, l1), (s2, l2)], self.name())?;
        let (dims1, dims2) = (l1.dims(), l2.dims());
        let lead = &dims1[..dims1.len() - 2];
        let (r1, c1) = (dims1[dims1.len() - 2], dims1[dims1.len() - 1]);
        let (r2, c2) = (dims2[dims2.len() - 2], dims2[dims2.len() - 1]);
        let (m, k) = if self.transpose_lhs {
            (c1, r1)
        } else {
            (r1, c1)
        };
        let (k2, n) = if self.transpose_rhs {
            (c2, r2)
        } else {
            (r2, c2)
        };
        if k != k2 || lead != &dims2[..dims2.len() - 2] {
            candle_core::bail!(
                "{}: shapes {dims1:?} and {dims2:?} do not multiply",
                self.name()
            );
        }
        let lhs_of = |i: usize| {
            let size = r1 * c1;
            Matrix::of(&lhs[i * size..(i + 1) * size], (r1, c1), self.transpose_lhs)
        };
        let rhs_of = |i: usize| {
            let size = r2 * c2;
            Matrix::of(&rhs[i * size..(i + 1) * size], (r2, c2), self.transpose_rhs)
        };
        let batch: usize = lead.iter().product();
        let out = if batch == 1 {
            product(lhs_of(0), rhs_of(0), all_threads())
        } else if m * n == 0 {
            Vec::new()
        } else {
            // SAFETY: the products write every one of the `batch` matrices.
            unsafe {
                written(batch * m * n, |out| {
                    // Side by side, one thread each: each product is too small to split well.
                    out.par_chunks_mut(m * n).enumerate().for_each(|(i, dst)| {
                        gemm_overwrite(dst, n, lhs_of(i), rhs_of(i), Parallelism::None)
                    })
                })
            }
        };
        let mut out_dims = lead.to_vec();
        out_dims.extend([m, n]);
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if self.transpose_lhs || !self.transpose_rhs {
            candle_core::bail!("{}: only a · bᵀ is differentiable", self.name());
        }
        let grad = grad.contiguous()?;
        let product = |transpose_lhs, transpose_rhs| Product {
            transpose_lhs,
            transpose_rhs,
        };
        // out = a · bᵀ: ∂a = g · b, ∂b = gᵀ · a.
        let da = grad.apply_op2_no_bwd(b, &product(false, false))?;
        let db = grad.apply_op2_no_bwd(a, &product(true, false))?;
        Ok((Some(da), Some(db)))
    }
}
