//! Reading and writing a tensor's f32 elements as plain slices, so an optimizer updates a
//! variable and its slots in one pass with no intermediate tensors. A contiguous f32 tensor
//! on the CPU is read and written where it lives; any other tensor (another device or dtype,
//! a strided view) goes through a host copy, so every optimizer works everywhere and is fused
//! on the CPU.

use std::cell::RefCell;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, Var};

/// Calls `f` with the f32 elements of `t` in row-major order: borrowed from a contiguous f32
/// CPU tensor, copied otherwise.
pub fn read_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&values[start..end]));
        }
    }
    Ok(f(&host_copy(t)?))
}

/// Calls `f` on the f32 elements of `var` and keeps what it writes: in place for a contiguous
/// f32 CPU variable, through a host copy written back with `Var::set` otherwise.
pub fn update_f32(var: &Var, f: impl FnOnce(&mut [f32])) -> Result<()> {
    let t = var.as_tensor();
    if crate::rows::fused(t) && t.is_contiguous() {
        let op = SliceOp(RefCell::new(Some(f)));
        t.inplace_op1(&op)?;
        return Ok(());
    }
    let mut values = host_copy(t)?;
    f(&mut values);
    let new = Tensor::from_vec(values, t.shape(), t.device())?.to_dtype(t.dtype())?;
    var.set(&new)?;
    Ok(())
}

/// Calls `f` on the f32 elements of `target` where they live, when it is a contiguous f32
/// CPU tensor (the caller must hold the only use of its storage); returns whether it did
/// (nothing is written otherwise).
pub fn write_in_place(target: &Tensor, f: impl FnOnce(&mut [f32])) -> Result<bool> {
    if !(crate::rows::fused(target) && target.is_contiguous()) {
        return Ok(false);
    }
    target.inplace_op1(&SliceOp(RefCell::new(Some(f))))?;
    Ok(true)
}

/// Adds the elements of `source` to those of `target` in place, under the conditions of
/// [`write_in_place`]; returns whether it did.
pub fn add_into(target: &Tensor, source: &Tensor) -> Result<bool> {
    read_f32(source, |source| {
        write_in_place(target, |target| {
            for (t, s) in target.iter_mut().zip(source) {
                *t += s;
            }
        })
    })?
}

/// The elements of `t` as f32, copied to the host in row-major order.
fn host_copy(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// An in-place op running a closure once on the f32 elements of a contiguous CPU storage.
struct SliceOp<F>(RefCell<Option<F>>);

impl<F: FnOnce(&mut [f32])> candle_core::InplaceOp1 for SliceOp<F> {
    fn name(&self) -> &'static str {
        "grove-f32-slice-update"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: the variable is not contiguous", self.name());
        };
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("{}: the variable is not f32", self.name());
        };
        if let Some(f) = self.0.borrow_mut().take() {
            f(&mut values[start..end]);
        }
        Ok(())
    }
}
