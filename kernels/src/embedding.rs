//! Looking up rows of an embedding table by id. The backward adds each looked-up row's
//! gradient into its table row in parallel row blocks, every row's contributions in id order
//! (`direct_gradients::scatter_rows`; candle's `index_select` backward adds them with
//! `index_add` on one thread). Inside a `DirectGradients` scope the rows go straight into the
//! gradient a tied decoder left for the same table, with no dense table of their own.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::direct_gradients::Route;
use super::rows::{check_ids, f32_inputs, f32_slice, fused, u32_slice, with_f32};

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
        let ids = ids.to_vec1::<u32>()?;
        Ok((Some(table_gradient(table, &ids, grad, self.name())?), None))
    }
}

/// The gradient of `table` `(V, H)` whose rows at `ids` received the rows of `grad` `(N, H)`.
fn table_gradient(table: &Tensor, ids: &[u32], grad: &Tensor, op: &str) -> Result<Tensor> {
    let grad = grad.contiguous()?;
    let dtable = with_f32([&grad], op, |[g]| Route::Graph.rows_gradient(table, ids, g))??;
    Ok(dtable.expect("the graph route returns the gradient"))
}

/// `Σₜ tableₜ[idsₜ]` over three lookups, as a BERT embedding layer adds its word, position and
/// type embeddings: each table `(Vₜ, H)` with u32 ids `(N,)`, giving `(N, H)`. One op and one
/// `(N, H)` tensor, where separate lookups and adds keep five. Fused for f32 CPU tables and
/// u32 ids, [`embedding_sum_primitive`] otherwise.
pub fn embedding_sum(lookups: [(&Tensor, &Tensor); 3]) -> Result<Tensor> {
    let (n, h) = (lookups[0].1.elem_count(), lookups[0].0.dim(1)?);
    for (table, ids) in lookups {
        if table.rank() != 2 || table.dim(1)? != h || ids.dims() != [n] {
            candle_core::bail!(
                "embedding_sum: table {:?} with ids {:?} (want (V, {h}) tables and ({n},) ids)",
                table.dims(),
                ids.dims()
            );
        }
    }
    let fusable = lookups
        .iter()
        .all(|(table, ids)| fused(table) && ids.device().is_cpu() && ids.dtype() == DType::U32);
    if !fusable {
        return embedding_sum_primitive(lookups);
    }
    let [(t0, i0), (t1, i1), (t2, i2)] = lookups;
    let mut routes = [t0, t1, t2].map(|t| Route::whole(t, true));
    // candle runs an op's backward only when an input is in its graph (see
    // `Route::for_blocks`): the smallest table stays there if all three would leave it.
    if routes.iter().all(Route::is_direct) {
        let smallest = (0..3).min_by_key(|&i| lookups[i].0.elem_count());
        routes[smallest.expect("three tables")] = Route::Graph;
    }
    let [t0, t1, t2] = [(t0, &routes[0]), (t1, &routes[1]), (t2, &routes[2])]
        .map(|(t, route)| route.input(t).contiguous());
    let op = EmbeddingSum {
        ids: [i0.to_vec1()?, i1.to_vec1()?, i2.to_vec1()?],
        routes,
    };
    t0?.apply_op3(&t1?, &t2?, op)
}

/// [`embedding_sum`] with candle's ops: three `index_select` lookups added.
pub fn embedding_sum_primitive(lookups: [(&Tensor, &Tensor); 3]) -> Result<Tensor> {
    let [a, b, c] = lookups.map(|(table, ids)| embedding_primitive(table, ids));
    (a? + b?)? + c?
}

/// The op of [`embedding_sum`]; it holds the three lookups' ids.
struct EmbeddingSum {
    ids: [Vec<u32>; 3],
    /// Where each table's gradient goes.
    routes: [Route; 3],
}

impl CustomOp3 for EmbeddingSum {
    fn name(&self) -> &'static str {
        "grove-embedding-sum"
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
        let tables = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], name)?;
        for (layout, ids) in [l1, l2, l3].iter().zip(&self.ids) {
            check_ids(ids, layout.shape().dims2()?.0, "id", name)?;
        }
        let h = l1.shape().dims2()?.1;
        let n = self.ids[0].len();
        let mut out = vec![0f32; n * h];
        if h > 0 {
            out.par_chunks_mut(h).enumerate().for_each(|(i, row)| {
                for (table, ids) in tables.iter().zip(&self.ids) {
                    let start = ids[i] as usize * h;
                    row.iter_mut()
                        .zip(&table[start..start + h])
                        .for_each(|(y, x)| *y += x);
                }
            });
        }
        Ok((CpuStorage::F32(out), Shape::from((n, h))))
    }

    fn bwd(
        &self,
        t0: &Tensor,
        t1: &Tensor,
        t2: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gradient = |i: usize, table| {
            with_f32([&grad], self.name(), |[g]| {
                self.routes[i].rows_gradient(table, &self.ids[i], g)
            })?
        };
        Ok((gradient(0, t0)?, gradient(1, t1)?, gradient(2, t2)?))
    }
}
