//! Multi-head self-attention up to its output projection as one op: the query, key and value
//! projections of `x` (one product), then for every batch item and head
//! `softmax(scale · q·kᵀ + mask) · v`.
//!
//! The projections land side by side in one `(B·S, 3H)` matrix and every head of `q`, `k` and
//! `v` is read in place as a column block of it, as the context is written into `(B·S, H)`, so
//! no head is copied into a tensor of its own. The op keeps the projections for its backward.
//! It keeps the `(B, NH, S, S)` probabilities too while they are small
//! ([`KEPT_PROBABILITIES_MAX_BYTES`]); larger ones are recomputed in the backward (one `S × S`
//! product and a softmax per head, a small fraction of the layer's work). candle's
//! graph holds one node where the unfused form held a dozen (three projections, three head
//! splits, two products, the softmax, the merge and a transpose), each of whose backward
//! accumulated an activation-sized gradient.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, Device, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::direct_gradients::Route;
use super::heads::{merge_heads_primitive, split_heads_primitive};
use super::kept::Kept;
use super::linear::linear_primitive;
use super::matmul_nt::{gemm_into, gemm_overwrite, matmul_nt_primitive, Matrix};
use super::packed_layer::{pack, Layer};
use super::rows::{f32_inputs, fused, output_gradient, with_f32, written};
use super::softmax::{
    masked_softmax_in_place, masked_softmax_primitive, softmax_backward_in_place,
};

/// The largest `(B, NH, S, S)` probabilities, in bytes, that the op keeps for its backward;
/// above it the backward recomputes them. At the tiny BERT's sizes (a replica's 8 sequences of
/// 64 tokens, 2 heads: 256 KiB a layer) the recomputation is about 3 % of the step; at
/// BERT-mini's (2 MiB a layer and replica) it is under 1 % and the memory weighs more
/// (measured on 2 vCPU of an Intel Xeon and of an AMD EPYC Zen 5, both AVX-512).
const KEPT_PROBABILITIES_MAX_BYTES: usize = 1 << 20;

/// A dense layer's `(weight (out, in), bias (out,))`.
pub type DenseParams<'a> = (&'a Tensor, &'a Tensor);

/// `softmax(scale · q·kᵀ + mask) · v` per head, with `q`, `k` and `v` the projections of `x`
/// `(B·S, H)` by `query`, `key` and `value` (weights `(H, H)`, biases `(H,)`) and the `heads`
/// heads side by side in `H`; `mask` is the additive `(B, 1, 1, S)` bias over keys. Returns the
/// context `(B·S, H)`. Fused on f32 CPU tensors, candle's ops elsewhere.
pub fn self_attention(
    x: &Tensor,
    [query, key, value]: [DenseParams; 3],
    mask: &Tensor,
    (batch, seq, heads): (usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    let hidden = x.dim(1)?;
    let square = [hidden, hidden];
    let fits = x.dims() == [batch * seq, hidden]
        && [query, key, value]
            .iter()
            .all(|(w, b)| w.dims() == square && b.dims() == [hidden]);
    if !fits {
        candle_core::bail!(
            "self_attention: x {:?} must be (B·S, H) = ({}, H) and each projection an (H, H) weight with an (H,) bias",
            x.dims(),
            batch * seq
        );
    }
    if heads == 0 || !hidden.is_multiple_of(heads) || mask.dims() != [batch, 1, 1, seq] {
        candle_core::bail!(
            "self_attention: {heads} heads of a hidden size {hidden} with a mask {:?} (want ({batch}, 1, 1, {seq}))",
            mask.dims()
        );
    }
    let tensors = [x, query.0, query.1, key.0, key.1, value.0, value.1, mask];
    if !tensors.into_iter().all(fused) {
        return self_attention_primitive(x, [query, key, value], mask, (batch, seq, heads), scale);
    }
    let packed = pack(&[query, key, value], x.track_op())?;
    let op = SelfAttention {
        seq,
        heads,
        width: hidden / heads,
        scale: scale as f32,
        mask: mask.flatten_all()?.to_vec1::<f32>()?,
        projections: Kept::default(),
        probabilities: Kept::default(),
        route: packed.route,
    };
    x.contiguous()?.apply_op2(&packed.tensor, op)
}

/// [`self_attention`] with candle's ops: projections, heads split out, `q·kᵀ`, masked softmax,
/// `· v`, merged.
pub fn self_attention_primitive(
    x: &Tensor,
    [query, key, value]: [DenseParams; 3],
    mask: &Tensor,
    (batch, seq, heads): (usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    let split =
        |(w, b): DenseParams| split_heads_primitive(&linear_primitive(x, w, b)?, batch, seq, heads);
    let scores = matmul_nt_primitive(&split(query)?, &split(key)?)?;
    let probs = masked_softmax_primitive(&scores, mask, scale)?;
    merge_heads_primitive(&probs.matmul(&split(value)?)?)
}

/// The op: sizes, the mask, and the projections the forward leaves for the backward.
struct SelfAttention {
    seq: usize,
    heads: usize,
    width: usize,
    scale: f32,
    /// The `(B, S)` additive key bias.
    mask: Vec<f32>,
    /// `[q | k | v]`, `(B·S, 3H)`.
    projections: Kept,
    /// The probabilities `(B, NH, S, S)`, when they are small enough to keep.
    probabilities: Kept,
    /// Where the packed projections' gradient goes.
    route: Route,
}

/// Which of the three projections a head is read from.
#[derive(Clone, Copy)]
enum Part {
    Query = 0,
    Key = 1,
    Value = 2,
}

impl SelfAttention {
    fn hidden(&self) -> usize {
        self.heads * self.width
    }

    /// The column of head `n` of `part` in the `(·, 3H)` projections.
    fn column(&self, part: Part, n: usize) -> usize {
        part as usize * self.hidden() + n * self.width
    }

    /// Head `n` of `part` in one batch item's `(S, 3H)` projections, as an `S × DH` matrix.
    fn head<'a>(&self, rows: &'a [f32], part: Part, n: usize) -> Matrix<'a> {
        Matrix {
            values: &rows[self.column(part, n)..],
            rows: self.seq,
            cols: self.width,
            row_stride: 3 * self.hidden(),
            col_stride: 1,
        }
    }

    /// Head `n` of `part`, transposed: `DH × S`.
    fn head_transposed<'a>(&self, rows: &'a [f32], part: Part, n: usize) -> Matrix<'a> {
        Matrix {
            values: &rows[self.column(part, n)..],
            rows: self.width,
            cols: self.seq,
            row_stride: 1,
            col_stride: 3 * self.hidden(),
        }
    }

    /// Head `n` of one batch item's `(S, H)` context (or its gradient).
    fn context_head<'a>(&self, rows: &'a [f32], n: usize) -> Matrix<'a> {
        Matrix {
            values: &rows[n * self.width..],
            rows: self.seq,
            cols: self.width,
            row_stride: self.hidden(),
            col_stride: 1,
        }
    }

    /// A row-major `S × S` matrix, or its transpose.
    fn square<'a>(&self, values: &'a [f32], transpose: bool) -> Matrix<'a> {
        Matrix::of(values, (self.seq, self.seq), transpose)
    }

    /// Writes head `n`'s probabilities `softmax(scale · q·kᵀ + mask)` into `probs` (`S × S`),
    /// for the batch item whose projections and key bias are given.
    fn probabilities(&self, probs: &mut [f32], qkv: &[f32], mask: &[f32], n: usize) {
        let q = self.head(qkv, Part::Query, n);
        let kt = self.head_transposed(qkv, Part::Key, n);
        gemm_into(probs, self.seq, q, kt, false, Parallelism::None);
        for row in probs.chunks_mut(self.seq) {
            masked_softmax_in_place(row, mask, self.scale);
        }
    }

    /// The number of elements of one batch item's probabilities, `NH · S · S`.
    fn item_probabilities(&self) -> usize {
        self.heads * self.seq * self.seq
    }

    /// Head `n`'s `S × S` probabilities in `probs`, which is either a batch item's block of
    /// all `NH` heads (kept) or one head's buffer that every head reuses in turn (recomputed).
    fn head_probabilities<'a>(&self, probs: &'a mut [f32], n: usize) -> &'a mut [f32] {
        let square = self.seq * self.seq;
        let start = n * square % probs.len();
        &mut probs[start..start + square]
    }

    /// Runs `f(item, probs, scratch)` for every batch item in parallel: `probs` is the item's
    /// `NH · S · S` block of `kept` when given, else a per-thread `S · S` buffer for one head at
    /// a time (see [`Self::head_probabilities`]); `scratch` is a per-thread buffer of
    /// `scratch_len` elements.
    fn for_each_item<T: Send>(
        &self,
        items: impl IndexedParallelIterator<Item = T>,
        kept: Option<&mut [f32]>,
        scratch_len: usize,
        f: impl Fn(T, &mut [f32], &mut [f32]) + Send + Sync,
    ) {
        match kept {
            Some(kept) => items
                .zip(kept.par_chunks_mut(self.item_probabilities()))
                .for_each_init(
                    || vec![0f32; scratch_len],
                    |scratch, (item, probs)| f(item, probs, scratch),
                ),
            None => items.for_each_init(
                || vec![0f32; self.seq * self.seq + scratch_len],
                |buffer, item| {
                    let (probs, scratch) = buffer.split_at_mut(self.seq * self.seq);
                    f(item, probs, scratch)
                },
            ),
        }
    }

    /// The context `(B·S, H)` from the projections, and the probabilities when they are at
    /// most [`KEPT_PROBABILITIES_MAX_BYTES`].
    fn context(&self, qkv: &[f32]) -> (Vec<f32>, Option<Vec<f32>>) {
        let (seq, hidden) = (self.seq, self.hidden());
        let batch = qkv.len() / (3 * seq * hidden);
        let size = batch * self.item_probabilities();
        let mut kept = (size * std::mem::size_of::<f32>() <= KEPT_PROBABILITIES_MAX_BYTES)
            .then(|| vec![0f32; size]);
        let write = |out: &mut [MaybeUninit<f32>]| {
            let items = out
                .par_chunks_mut(seq * hidden)
                .zip(qkv.par_chunks(3 * seq * hidden))
                .zip(self.mask.par_chunks(seq));
            self.for_each_item(
                items,
                kept.as_deref_mut(),
                0,
                |((out, qkv), mask), probs, _| {
                    for n in 0..self.heads {
                        let probs = self.head_probabilities(probs, n);
                        self.probabilities(probs, qkv, mask, n);
                        let p = self.square(probs, false);
                        let v = self.head(qkv, Part::Value, n);
                        let out = &mut out[n * self.width..];
                        gemm_overwrite(out, hidden, p, v, Parallelism::None);
                    }
                },
            )
        };
        // SAFETY: the heads' products write every column block of every batch item.
        let context = unsafe { written(qkv.len() / 3, write) };
        (context, kept)
    }

    /// The gradient of the projections `(B·S, 3H)` from the context's `g`, with the
    /// probabilities the forward `kept` (recomputed when `None`).
    fn projections_gradient(&self, qkv: &[f32], g: &[f32], mut kept: Option<Vec<f32>>) -> Vec<f32> {
        let (seq, hidden) = (self.seq, self.hidden());
        let recompute = kept.is_none();
        let write = |d: &mut [MaybeUninit<f32>]| {
            let items = d
                .par_chunks_mut(3 * seq * hidden)
                .zip(qkv.par_chunks(3 * seq * hidden))
                .zip(g.par_chunks(seq * hidden))
                .zip(self.mask.par_chunks(seq));
            self.for_each_item(
                items,
                kept.as_deref_mut(),
                seq * seq,
                |(((d, qkv), g), mask), probs, dscores| {
                    let recompute = recompute.then_some(mask);
                    self.item_gradient(d, (qkv, g), (probs, recompute), dscores)
                },
            )
        };
        // SAFETY: every head writes its query, key and value column blocks of every item.
        unsafe { written(qkv.len(), write) }
    }

    /// Writes one batch item's projections' gradient `d` `(S, 3H)` from its projections, its
    /// context's gradient `g` and its probabilities `P` (each head's recomputed into its
    /// [`Self::head_probabilities`] just before it is used when the item's key bias is given): per head, `∂v = Pᵀ·g`,
    /// `∂S = scale · P ⊙ (g·vᵀ − rowsum(P ⊙ g·vᵀ))` (in `dscores`, `S × S`), `∂q = ∂S·k` and
    /// `∂k = ∂Sᵀ·q`.
    fn item_gradient(
        &self,
        d: &mut [MaybeUninit<f32>],
        (qkv, g): (&[f32], &[f32]),
        (probs, recompute): (&mut [f32], Option<&[f32]>),
        dscores: &mut [f32],
    ) {
        let (seq, hidden) = (self.seq, self.hidden());
        for n in 0..self.heads {
            let probs = self.head_probabilities(probs, n);
            if let Some(mask) = recompute {
                self.probabilities(probs, qkv, mask, n);
            }
            let g_n = self.context_head(g, n);
            let mut write = |part, lhs, rhs| {
                let d = &mut d[self.column(part, n)..];
                gemm_overwrite(d, 3 * hidden, lhs, rhs, Parallelism::None);
            };
            write(Part::Value, self.square(probs, true), g_n);
            let v_t = self.head_transposed(qkv, Part::Value, n);
            gemm_into(dscores, seq, g_n, v_t, false, Parallelism::None);
            for (ds, p) in dscores.chunks_mut(seq).zip(probs.chunks(seq)) {
                softmax_backward_in_place(ds, p, self.scale);
            }
            let k = self.head(qkv, Part::Key, n);
            write(Part::Query, self.square(dscores, false), k);
            let q = self.head(qkv, Part::Query, n);
            write(Part::Key, self.square(dscores, true), q);
        }
    }
}

impl CustomOp2 for SelfAttention {
    fn name(&self) -> &'static str {
        "grove-self-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let [x, packed] = f32_inputs([(s1, l1), (s2, l2)], name)?;
        let layer = Layer::of(packed, l2.shape())?;
        let rows = l1.shape().dims2()?.0;
        let qkv = layer.apply(x, rows);
        let (context, probabilities) = self.context(&qkv);
        self.projections.keep(qkv);
        if let Some(probabilities) = probabilities {
            self.probabilities.keep(probabilities);
        }
        Ok((CpuStorage::F32(context), Shape::from((rows, self.hidden()))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        context: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let grad = output_gradient(grad, context, name)?;
        let rows = x.dim(0)?;
        let (dx, dpacked) = with_f32([x, packed, &grad], name, |[x, w, g]| {
            let layer = Layer::of(w, packed.shape())?;
            let qkv = self.projections.take_or(|| layer.apply(x, rows));
            let dqkv = self.projections_gradient(&qkv, g, self.probabilities.take());
            drop(qkv);
            let dpacked = layer.gradient(x, &dqkv, rows);
            Ok::<_, candle_core::Error>((layer.input_gradient(&dqkv, rows), dpacked))
        })??;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?),
            self.route.gradient(dpacked, packed)?,
        ))
    }
}
