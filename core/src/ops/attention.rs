//! Multi-head attention's core as one op: for every batch item and head,
//! `softmax(scale · q·kᵀ + mask) · v`.
//!
//! The heads of `q`, `k` and `v` are read in place as column blocks of the `(B·S, H)`
//! projections, and the context is written the same way, so no head is copied into a tensor of
//! its own. The probabilities are not kept for the backward: it recomputes them (one `S × S`
//! product per head, a small fraction of the layer's work), which saves the `(B, NH, S, S)`
//! scores and probabilities in memory. candle's graph holds one node where the unfused form
//! held eight (three head splits, two products, the softmax, the merge and a transpose), each
//! of whose backward accumulated an activation-sized gradient.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::heads::{merge_heads_primitive, split_heads_primitive};
use super::matmul_nt::{gemm_into, matmul_nt_primitive, Matrix};
use super::rows::{f32_slice, fused, with_f32};
use super::softmax::{
    masked_softmax_in_place, masked_softmax_primitive, softmax_backward_in_place,
};

/// `softmax(scale · q·kᵀ + mask) · v` per head. `q`, `k` and `v` are `(B·S, H)` with the
/// `heads` heads side by side in `H`; `mask` is the additive `(B, 1, 1, S)` bias over keys.
/// Returns the context `(B·S, H)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    (batch, seq, heads): (usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    let hidden = q.dim(1)?;
    let want = [batch * seq, hidden];
    if q.dims() != want || k.dims() != want || v.dims() != want {
        candle_core::bail!(
            "attention: q {:?}, k {:?} and v {:?} must all be (B·S, H) = {want:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if heads == 0 || !hidden.is_multiple_of(heads) || mask.dims() != [batch, 1, 1, seq] {
        candle_core::bail!(
            "attention: {heads} heads of a hidden size {hidden} with a mask {:?} (want ({batch}, 1, 1, {seq}))",
            mask.dims()
        );
    }
    if !(fused(q) && fused(k) && fused(v) && fused(mask)) {
        return attention_primitive(q, k, v, mask, (batch, seq, heads), scale);
    }
    let op = Attention {
        seq,
        heads,
        width: hidden / heads,
        scale: scale as f32,
        mask: mask.flatten_all()?.to_vec1::<f32>()?,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// [`attention`] with candle's ops: heads split out, `q·kᵀ`, masked softmax, `· v`, merged.
pub fn attention_primitive(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    (batch, seq, heads): (usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    let split = |t: &Tensor| split_heads_primitive(t, batch, seq, heads);
    let scores = matmul_nt_primitive(&split(q)?, &split(k)?)?;
    let probs = masked_softmax_primitive(&scores, mask, scale)?;
    merge_heads_primitive(&probs.matmul(&split(v)?)?)
}

/// The forward op, and the sizes and mask its backward shares.
#[derive(Clone)]
struct Attention {
    seq: usize,
    heads: usize,
    width: usize,
    scale: f32,
    /// The `(B, S)` additive key bias.
    mask: Vec<f32>,
}

impl Attention {
    fn hidden(&self) -> usize {
        self.heads * self.width
    }

    /// Head `n` of one batch item's `(S, H)` rows, as an `S × DH` matrix.
    fn head<'a>(&self, rows: &'a [f32], n: usize) -> Matrix<'a> {
        Matrix {
            values: &rows[n * self.width..],
            rows: self.seq,
            cols: self.width,
            row_stride: self.hidden(),
            col_stride: 1,
        }
    }

    /// Head `n` of one batch item's rows, transposed: `DH × S`.
    fn head_transposed<'a>(&self, rows: &'a [f32], n: usize) -> Matrix<'a> {
        Matrix {
            values: &rows[n * self.width..],
            rows: self.width,
            cols: self.seq,
            row_stride: 1,
            col_stride: self.hidden(),
        }
    }

    /// A row-major `S × S` matrix.
    fn square<'a>(&self, values: &'a [f32]) -> Matrix<'a> {
        Matrix::of(values, (self.seq, self.seq), false)
    }

    /// Writes head `n`'s probabilities `softmax(scale · q·kᵀ + mask)` into `probs` (`S × S`),
    /// for the batch item whose rows and key bias are given.
    fn probabilities(&self, probs: &mut [f32], q: &[f32], k: &[f32], mask: &[f32], n: usize) {
        let (q, kt) = (self.head(q, n), self.head_transposed(k, n));
        gemm_into(probs, self.seq, q, kt, false, Parallelism::None);
        for row in probs.chunks_mut(self.seq) {
            masked_softmax_in_place(row, mask, self.scale);
        }
    }

    /// Each batch item's rows of `t` (`(B·S, H)`), for the thread pool.
    fn items<'a>(&self, t: &'a [f32]) -> rayon::slice::Chunks<'a, f32> {
        t.par_chunks(self.seq * self.hidden())
    }
}

/// The elements of three `(B·S, H)` inputs, checked to have the same size.
fn three<'a>(
    name: &str,
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
    (s3, l3): (&'a CpuStorage, &Layout),
) -> Result<[&'a [f32]; 3]> {
    let all = [
        f32_slice(s1, l1, name)?,
        f32_slice(s2, l2, name)?,
        f32_slice(s3, l3, name)?,
    ];
    if all.iter().any(|t| t.len() != all[0].len()) {
        candle_core::bail!("{name}: q, k and v differ in size");
    }
    Ok(all)
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "grove-attention"
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
        let [q, k, v] = three(self.name(), (s1, l1), (s2, l2), (s3, l3))?;
        let (seq, item) = (self.seq, self.seq * self.hidden());
        let mut out = vec![0f32; q.len()];
        out.par_chunks_mut(item)
            .zip(self.items(q).zip(self.items(k)).zip(self.items(v)))
            .zip(self.mask.par_chunks(seq))
            .for_each_init(
                || vec![0f32; seq * seq],
                |probs, ((out, ((q, k), v)), mask)| {
                    for n in 0..self.heads {
                        self.probabilities(probs, q, k, mask, n);
                        let (p, v) = (self.square(probs), self.head(v, n));
                        let out = &mut out[n * self.width..];
                        gemm_into(out, self.hidden(), p, v, false, Parallelism::None);
                    }
                },
            );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _context: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let backward = AttentionBackward {
            forward: self.clone(),
            grad: grad.contiguous()?,
        };
        // (3, B·S, H): the gradients of q, k and v.
        let all = q.apply_op3_no_bwd(k, v, &backward)?;
        Ok((Some(all.get(0)?), Some(all.get(1)?), Some(all.get(2)?)))
    }
}

/// [`Attention`]'s backward on `(q, k, v)` given the context's gradient: recomputes each
/// head's probabilities `P`, then `∂v = Pᵀ·g`, `∂S = scale · P ⊙ (g·vᵀ − rowsum(P ⊙ g·vᵀ))`,
/// `∂q = ∂S·k` and `∂k = ∂Sᵀ·q`. Output `(3, B·S, H)`.
struct AttentionBackward {
    forward: Attention,
    grad: Tensor,
}

impl AttentionBackward {
    /// The gradients of `q`, `k` and `v` one after the other, given the context's `g`.
    fn gradients(&self, q: &[f32], k: &[f32], v: &[f32], g: &[f32]) -> Vec<f32> {
        let a = &self.forward;
        let (seq, item, hidden) = (a.seq, a.seq * a.hidden(), a.hidden());
        let mut out = vec![0f32; 3 * q.len()];
        let (dq, rest) = out.split_at_mut(q.len());
        let (dk, dv) = rest.split_at_mut(q.len());
        let inputs = a.items(q).zip(a.items(k)).zip(a.items(v)).zip(a.items(g));
        dq.par_chunks_mut(item)
            .zip(dk.par_chunks_mut(item))
            .zip(dv.par_chunks_mut(item))
            .zip(inputs.zip(a.mask.par_chunks(seq)))
            .for_each_init(
                || (vec![0f32; seq * seq], vec![0f32; seq * seq]),
                |(probs, dscores), (((dq, dk), dv), ((((q, k), v), g), mask))| {
                    for n in 0..a.heads {
                        a.probabilities(probs, q, k, mask, n);
                        let at = n * a.width;
                        let p_t = Matrix::of(probs, (seq, seq), true);
                        gemm_into(
                            &mut dv[at..],
                            hidden,
                            p_t,
                            a.head(g, n),
                            false,
                            Parallelism::None,
                        );
                        let (g_n, v_t) = (a.head(g, n), a.head_transposed(v, n));
                        gemm_into(dscores, seq, g_n, v_t, false, Parallelism::None);
                        for (ds, p) in dscores.chunks_mut(seq).zip(probs.chunks(seq)) {
                            softmax_backward_in_place(ds, p, a.scale);
                        }
                        let ds = a.square(dscores);
                        gemm_into(
                            &mut dq[at..],
                            hidden,
                            ds,
                            a.head(k, n),
                            false,
                            Parallelism::None,
                        );
                        let ds_t = Matrix::of(dscores, (seq, seq), true);
                        gemm_into(
                            &mut dk[at..],
                            hidden,
                            ds_t,
                            a.head(q, n),
                            false,
                            Parallelism::None,
                        );
                    }
                },
            );
        out
    }
}

impl CustomOp3 for AttentionBackward {
    fn name(&self) -> &'static str {
        "grove-attention-backward"
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
        let [q, k, v] = three(self.name(), (s1, l1), (s2, l2), (s3, l3))?;
        if self.grad.elem_count() != q.len() {
            candle_core::bail!("{}: the gradient does not match q", self.name());
        }
        let out = with_f32([&self.grad], self.name(), |[g]| self.gradients(q, k, v, g))?;
        let hidden = self.forward.hidden();
        let rows = q.len() / hidden;
        Ok((CpuStorage::F32(out), Shape::from((3, rows, hidden))))
    }
}
