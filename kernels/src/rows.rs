//! What the fused kernels share: reading a storage as an f32 slice, the fused-path test, and
//! splitting work into rows for the thread pool.

use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

/// Whether `t` takes the fused CPU path (f32 on the CPU).
pub(crate) fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The f32 elements of a contiguous CPU storage under `layout`.
pub(crate) fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: input is not contiguous");
    };
    match storage {
        CpuStorage::F32(values) => Ok(&values[start..end]),
        other => candle_core::bail!("{op}: expected f32, got {:?}", other.dtype()),
    }
}

/// Runs `f` on the f32 elements of the contiguous CPU tensors `tensors`, which are not an
/// op's inputs (an op's backward reads the output gradient and what it kept this way).
pub(crate) fn with_f32<const N: usize, R>(
    tensors: [&Tensor; N],
    op: &str,
    f: impl FnOnce([&[f32]; N]) -> R,
) -> Result<R> {
    with_f32_slices(&tensors, op, |slices| {
        f(slices.try_into().expect("one slice per tensor"))
    })
}

/// [`with_f32`] for any number of tensors.
pub(crate) fn with_f32_slices<R>(
    tensors: &[&Tensor],
    op: &str,
    f: impl FnOnce(&[&[f32]]) -> R,
) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(tensors.len());
    for (storage, layout) in &guards {
        let Storage::Cpu(storage) = &**storage else {
            candle_core::bail!("{op}: a tensor it reads is not on the CPU");
        };
        slices.push(f32_slice(storage, layout, op)?);
    }
    Ok(f(&slices))
}

/// An op's output gradient, contiguous, after checking that it has the output's shape.
pub(crate) fn output_gradient(grad: &Tensor, out: &Tensor, op: &str) -> Result<Tensor> {
    if grad.dims() != out.dims() {
        candle_core::bail!(
            "{op}: the gradient {:?} does not match the output {:?}",
            grad.dims(),
            out.dims()
        );
    }
    grad.contiguous()
}

/// The f32 elements of an op's contiguous CPU inputs, in order (see [`f32_slice`]).
pub(crate) fn f32_inputs<'a, const N: usize>(
    inputs: [(&'a CpuStorage, &Layout); N],
    op: &str,
) -> Result<[&'a [f32]; N]> {
    let slices = inputs
        .into_iter()
        .map(|(storage, layout)| f32_slice(storage, layout, op))
        .collect::<Result<Vec<_>>>()?;
    Ok(slices.try_into().expect("one slice per input"))
}

/// The length of the last dimension of `layout` (the row length), rejecting scalars.
pub(crate) fn row_len(layout: &Layout, op: &str) -> Result<usize> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!(
            "{op}: needs a non-empty last dimension, got {:?}",
            layout.dims()
        ),
    }
}

/// Rows per parallel task: enough elements (about 16K) that a task outweighs its scheduling.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (ELEMENTS_PER_TASK / row_len.max(1)).max(1)
}

/// The u32 elements of a contiguous CPU storage under `layout` (labels, ids).
pub(crate) fn u32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [u32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::U32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("{op}: labels and ids must be contiguous u32"),
    }
}

/// Checks that every id (`what`: a label, an id) is below `count`, naming the first that is
/// not and its position.
pub(crate) fn check_ids(ids: &[u32], count: usize, what: &str, op: &str) -> Result<()> {
    if let Some((position, id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= count) {
        candle_core::bail!("{op}: {what} {id} at position {position} is not below {count}");
    }
    Ok(())
}

/// `bias` repeated for each of `rows` rows, a `(rows, bias.len())` matrix written in parallel
/// row blocks (the start of a dense layer's output, onto which its product is added).
pub(super) fn bias_rows(bias: &[f32], rows: usize) -> Vec<f32> {
    let width = bias.len();
    // SAFETY: every row gets the bias.
    unsafe {
        written(rows * width, |out| {
            out.par_chunks_mut(width * rows_per_task(width))
                .for_each(|block| {
                    for row in block.chunks_mut(width) {
                        row.iter_mut().zip(bias).for_each(|(o, &b)| {
                            o.write(b);
                        });
                    }
                })
        })
    }
}

/// A new vector of `len` elements, every one of which `write` writes, without zeroing them
/// first (a serial pass over memory that the kernel overwrites anyway).
///
/// # Safety
/// `write` must initialise every element of the slice it gets.
pub(crate) unsafe fn written(len: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    write(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `write` initialised the first `len` elements.
    unsafe { values.set_len(len) };
    values
}

/// Elements per parallel task of an element-wise pass.
pub(crate) const ELEMENTS_PER_TASK: usize = 16 * 1024;

/// `f` of every element of `x`, computed in parallel into a new vector.
#[inline(always)]
pub(crate) fn par_map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    // SAFETY: the chunks of the output pair with the chunks of `x`, element by element.
    unsafe {
        written(x.len(), |out| {
            out.par_chunks_mut(ELEMENTS_PER_TASK)
                .zip(x.par_chunks(ELEMENTS_PER_TASK))
                .for_each(|(out, x)| {
                    crate::simd::vectorized!(out.iter_mut().zip(x).for_each(|(o, &x)| {
                        o.write(f(x));
                    }))
                })
        })
    }
}
