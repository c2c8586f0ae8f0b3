//! Splitting a `(B·S, H)` matrix into attention heads `(B, NH, S, DH)` and merging them back,
//! as one parallel pass each (candle's strided `contiguous` copy runs on one thread).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::rows::{f32_slice, fused};

/// The sizes of a head layout: batch, sequence, heads and head width.
#[derive(Debug, Clone, Copy)]
struct Heads {
    batch: usize,
    seq: usize,
    heads: usize,
    width: usize,
}

impl Heads {
    fn of(batch: usize, seq: usize, heads: usize, hidden: usize) -> Result<Self> {
        if heads == 0 || !hidden.is_multiple_of(heads) {
            candle_core::bail!("{heads} heads do not divide the hidden size {hidden}");
        }
        Ok(Heads {
            batch,
            seq,
            heads,
            width: hidden / heads,
        })
    }

    fn hidden(&self) -> usize {
        self.heads * self.width
    }

    fn check(&self, elements: usize, op: &str) -> Result<()> {
        let want = self.batch * self.seq * self.hidden();
        if elements != want {
            candle_core::bail!("{op}: {elements} elements, expected {want} for {self:?}");
        }
        Ok(())
    }
}

/// `x` `(B·S, H)` as heads `(B, NH, S, H/NH)`: head `n` of token `s` is columns
/// `n·DH .. (n+1)·DH` of row `b·S + s`. Fused on f32 CPU tensors.
pub fn split_heads(x: &Tensor, batch: usize, seq: usize, heads: usize) -> Result<Tensor> {
    let hidden = x.dim(1)?;
    let layout = Heads::of(batch, seq, heads, hidden)?;
    if !fused(x) {
        return split_heads_primitive(x, batch, seq, heads);
    }
    x.contiguous()?.apply_op1(SplitHeads(layout))
}

/// [`split_heads`] with candle's reshape, transpose and copy.
pub fn split_heads_primitive(x: &Tensor, batch: usize, seq: usize, heads: usize) -> Result<Tensor> {
    let width = x.dim(1)? / heads;
    x.reshape((batch, seq, heads, width))?
        .transpose(1, 2)?
        .contiguous()
}

/// Heads `(B, NH, S, DH)` back to `(B·S, NH·DH)`, the inverse of [`split_heads`]. Fused on
/// f32 CPU tensors.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (batch, heads, seq, width) = x.dims4()?;
    if !fused(x) {
        return merge_heads_primitive(x);
    }
    let layout = Heads::of(batch, seq, heads, heads * width)?;
    x.contiguous()?.apply_op1(MergeHeads(layout))
}

/// [`merge_heads`] with candle's transpose, copy and reshape.
pub fn merge_heads_primitive(x: &Tensor) -> Result<Tensor> {
    let (batch, heads, seq, width) = x.dims4()?;
    x.transpose(1, 2)?
        .contiguous()?
        .reshape((batch * seq, heads * width))
}

struct SplitHeads(Heads);

impl CustomOp1 for SplitHeads {
    fn name(&self) -> &'static str {
        "grove-split-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let h = self.0;
        h.check(x.len(), self.name())?;
        let mut out = vec![0f32; x.len()];
        // One task per (batch, head) block of S·DH contiguous outputs.
        out.par_chunks_mut(h.seq * h.width)
            .enumerate()
            .for_each(|(block, out)| {
                let (b, n) = (block / h.heads, block % h.heads);
                for (s, out) in out.chunks_mut(h.width).enumerate() {
                    let start = (b * h.seq + s) * h.hidden() + n * h.width;
                    out.copy_from_slice(&x[start..start + h.width]);
                }
            });
        let shape = Shape::from((h.batch, h.heads, h.seq, h.width));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(MergeHeads(self.0))?))
    }
}

struct MergeHeads(Heads);

impl CustomOp1 for MergeHeads {
    fn name(&self) -> &'static str {
        "grove-merge-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let h = self.0;
        h.check(x.len(), self.name())?;
        let mut out = vec![0f32; x.len()];
        // One task per token row of H contiguous outputs.
        out.par_chunks_mut(h.hidden())
            .enumerate()
            .for_each(|(row, out)| {
                let (b, s) = (row / h.seq, row % h.seq);
                for (n, out) in out.chunks_mut(h.width).enumerate() {
                    let start = ((b * h.heads + n) * h.seq + s) * h.width;
                    out.copy_from_slice(&x[start..start + h.width]);
                }
            });
        let shape = Shape::from((h.batch * h.seq, h.hidden()));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(SplitHeads(self.0))?))
    }
}
