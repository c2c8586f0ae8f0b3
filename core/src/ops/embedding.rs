//! Looking up rows of an embedding table by id. The backward adds each looked-up row's
//! gradient into its table row with the table split into row blocks, one per task, each task
//! scanning the ids for its own rows, so the sum runs in parallel without two tasks writing
//! the same row and adds every row's contributions in id order (candle's `index_select`
//! backward adds them with `index_add` on one thread).

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::rows::{check_ids, f32_slice, fused, rows_per_task, u32_slice, with_f32};

/// The rows of `table` `(V, H)` at `ids` (u32 `(N,)`), giving `(N, H)`. Fused for an f32 CPU
/// table and u32 ids, candle's `index_select` otherwise.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    if table.rank() != 2 || ids.rank() != 1 {
        candle_core::bail!(
            "embedding: table {:?} and ids {:?} (want (V, H) and (N,))",
            table.dims(),
            ids.dims()
        );
    }
    if !(fused(table) && ids.device().is_cpu() && ids.dtype() == DType::U32) {
        return embedding_primitive(table, ids);
    }
    table.contiguous()?.apply_op2(&ids.contiguous()?, Embedding)
}

/// [`embedding`] with candle's `index_select`.
pub fn embedding_primitive(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    table.contiguous()?.index_select(ids, 0)
}

struct Embedding;

impl CustomOp2 for Embedding {
    fn name(&self) -> &'static str {
        "grove-embedding"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (table, ids) = (
            f32_slice(s1, l1, self.name())?,
            u32_slice(s2, l2, self.name())?,
        );
        let (vocab, h) = l1.shape().dims2()?;
        check_ids(ids, vocab, "id", self.name())?;
        let mut out = vec![0f32; ids.len() * h];
        if h > 0 {
            out.par_chunks_mut(h)
                .zip(ids.par_iter())
                .for_each(|(row, &id)| {
                    let start = id as usize * h;
                    row.copy_from_slice(&table[start..start + h]);
                });
        }
        Ok((CpuStorage::F32(out), Shape::from((ids.len(), h))))
    }

    fn bwd(
        &self,
        table: &Tensor,
        ids: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (vocab, h) = table.dims2()?;
        let ids = ids.to_vec1::<u32>()?;
        let grad = grad.contiguous()?;
        let dtable = with_f32([&grad], self.name(), |[g]| {
            let mut dtable = vec![0f32; vocab * h];
            let block = rows_per_task(h);
            if h > 0 {
                dtable
                    .par_chunks_mut(block * h)
                    .enumerate()
                    .for_each(|(b, rows)| {
                        let first = b * block;
                        for (i, &id) in ids.iter().enumerate() {
                            let Some(local) = (id as usize).checked_sub(first) else {
                                continue;
                            };
                            if local < rows.len() / h {
                                let row = &mut rows[local * h..(local + 1) * h];
                                row.iter_mut()
                                    .zip(&g[i * h..(i + 1) * h])
                                    .for_each(|(d, g)| *d += g);
                            }
                        }
                    });
            }
            dtable
        })?;
        let dtable = Tensor::from_vec(dtable, (vocab, h), &Device::Cpu)?;
        Ok((Some(dtable), None))
    }
}
