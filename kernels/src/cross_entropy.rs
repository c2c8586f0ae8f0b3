//! Softmax cross-entropy of each row of logits against an integer label.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::simd::vectorized;

use super::fast_math::{exp, max, sum_map};
use super::rows::{check_ids, f32_slice, fused, row_len, rows_per_task, u32_slice};
use super::softmax::softmax_rows;

/// The loss of every row of `logits` `(N, C)` against `labels` `(N,)` (integer classes):
/// `logsumexp(row) − row[label]`, shape `(N,)`. Weighting and averaging are left to the
/// caller. Fused on f32 CPU logits, primitive ops elsewhere; a label `>= C` is an error.
pub fn cross_entropy_rows(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (rows, _) = logits.dims2()?;
    if labels.dims() != [rows] {
        candle_core::bail!(
            "cross-entropy: labels have shape {:?}, expected ({rows},)",
            labels.dims()
        );
    }
    if !fused(logits) {
        return cross_entropy_rows_primitive(logits, labels);
    }
    let labels = labels.to_dtype(DType::U32)?.to_device(logits.device())?;
    logits.contiguous()?.apply_op2(&labels, CrossEntropy)
}

/// [`cross_entropy_rows`] written with candle's primitive (differentiable) ops.
pub fn cross_entropy_rows_primitive(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let labels = labels.to_dtype(DType::U32)?.unsqueeze(1)?;
    log_probs.gather(&labels, 1)?.squeeze(1)?.neg()
}

/// Each row's `logsumexp(row) − row[label]`, for rows of `classes` logits, in parallel.
pub(super) fn row_losses(logits: &[f32], labels: &[u32], classes: usize) -> Vec<f32> {
    logits
        .par_chunks(classes)
        .zip(labels.par_iter())
        .with_min_len(rows_per_task(classes))
        .map(|(row, &label)| {
            vectorized!({
                let max = max(row);
                let sum = sum_map(row, |x| exp(x - max));
                max + sum.ln() - row[label as usize]
            })
        })
        .collect()
}

/// The gradient of the logits from each row's loss gradient `grad`:
/// `(softmax(row) − onehot(label)) · g_row`.
pub(super) fn logits_gradient(
    logits: &[f32],
    labels: &[u32],
    grad: &[f32],
    classes: usize,
) -> Vec<f32> {
    let mut d = vec![0f32; logits.len()];
    softmax_rows(logits, &mut d, classes);
    probabilities_to_gradient(&mut d, labels, grad, classes);
    d
}

/// Turns each row's softmax probabilities into the gradient of its logits, in place:
/// `(p − onehot(label)) · g_row`.
pub(super) fn probabilities_to_gradient(
    probs: &mut [f32],
    labels: &[u32],
    grad: &[f32],
    classes: usize,
) {
    probs
        .par_chunks_mut(classes)
        .zip(labels.par_iter().zip(grad.par_iter()))
        .with_min_len(rows_per_task(classes))
        .for_each(|(row, (&label, &g))| {
            row[label as usize] -= 1.0;
            vectorized!(row.iter_mut().for_each(|x| *x *= g));
        });
}

/// The forward op; its backward runs [`CrossEntropyBackward`].
struct CrossEntropy;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "grove-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = f32_slice(s1, l1, self.name())?;
        let labels = u32_slice(s2, l2, self.name())?;
        let classes = row_len(l1, self.name())?;
        check_ids(labels, classes, "label", self.name())?;
        let losses = row_losses(logits, labels, classes);
        Ok((CpuStorage::F32(losses), Shape::from(labels.len())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _losses: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dlogits =
            logits.apply_op3_no_bwd(labels, &grad.contiguous()?, &CrossEntropyBackward)?;
        Ok((Some(dlogits), None))
    }
}

/// `dlogits = (softmax(row) − onehot(label)) · g_row`.
struct CrossEntropyBackward;

impl CustomOp3 for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "grove-cross-entropy-backward"
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
        let logits = f32_slice(s1, l1, self.name())?;
        let labels = u32_slice(s2, l2, self.name())?;
        let grad = f32_slice(s3, l3, self.name())?;
        let classes = row_len(l1, self.name())?;
        let d = logits_gradient(logits, labels, grad, classes);
        Ok((CpuStorage::F32(d), l1.shape().clone()))
    }
}
