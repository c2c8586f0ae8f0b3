//! A classifier's output layer and its softmax cross-entropy as one op: `x · Wᵀ + b` gives the
//! logits, and each row's loss against its label comes out, with the arg-max predictions.
//!
//! As two ops, the `(N, classes)` logits are a tensor that candle's graph holds to the end of
//! the backward, and for a masked LM head over a vocabulary they are the largest tensor of the
//! step (BERT-mini: 304 × 8192 floats, 10 MB; BERT-base at batch 256: 600 MB). Here the
//! logits live only inside the op: the forward turns them into the softmax probabilities in
//! place once the losses and predictions are out and keeps those for its backward, which
//! turns them, again in place, into the logits' gradient and that into the gradients of `x`,
//! `W` and `b` at once. The backward then holds one logits-sized buffer, not the logits
//! recomputed beside their gradient; a second backward over the same graph recomputes them.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::column_sums::column_sums;
use super::cross_entropy::{cross_entropy_rows_primitive, probabilities_to_gradient, row_losses};
use super::direct_gradients::Route;
use super::fast_math::max;
use super::kept::Kept;
use super::linear::{affine, linear_primitive};
use super::matmul_nt::{all_threads, product, Matrix};
use super::rows::{check_ids, f32_inputs, fused, output_gradient, rows_per_task, with_f32};
use super::softmax::softmax_rows_in_place;
use crate::simd::vectorized;

/// The loss of every row of the logits `x · wᵀ + b` against `labels`, and the arg-max class
/// of every row: for `x` `(N, K)`, `w` `(C, K)`, `b` `(C,)` and integer `labels` `(N,)`,
/// `(losses (N,), predictions (N,) u32)`. The losses are `logsumexp(row) − row[label]`
/// (weighting and averaging are left to the caller); the predictions carry no gradient. Fused
/// on f32 CPU tensors (the logits are never kept), candle's ops elsewhere; a label `>= C` is an
/// error.
pub fn linear_cross_entropy(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    labels: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let fits = match (x.dims(), w.dims(), b.dims(), labels.dims()) {
        ([n, k], [c, k1], [c1], [n1]) => k == k1 && c == c1 && n == n1,
        _ => false,
    };
    if !fits {
        candle_core::bail!(
            "linear_cross_entropy: x {:?}, w {:?}, b {:?} and labels {:?} do not fit (want (N, K), (C, K), (C,), (N,))",
            x.dims(),
            w.dims(),
            b.dims(),
            labels.dims()
        );
    }
    if !(fused(x) && fused(w) && fused(b)) {
        return linear_cross_entropy_primitive(x, w, b, labels);
    }
    let labels = labels
        .to_dtype(DType::U32)?
        .flatten_all()?
        .to_vec1::<u32>()?;
    let predictions = Arc::new(Mutex::new(Vec::new()));
    let routes = [w, b].map(|t| Route::whole(t, x.track_op()));
    let (w, b) = (routes[0].input(w), routes[1].input(b));
    let losses = x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LinearCrossEntropy {
            labels,
            predictions: Arc::clone(&predictions),
            probabilities: Kept::default(),
            routes,
        },
    )?;
    let predictions = std::mem::take(&mut *predictions.lock().unwrap_or_else(|p| p.into_inner()));
    let count = predictions.len();
    Ok((losses, Tensor::from_vec(predictions, count, &Device::Cpu)?))
}

/// [`linear_cross_entropy`] with candle's ops (the logits are a tensor of the graph).
pub fn linear_cross_entropy_primitive(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    labels: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let logits = linear_primitive(x, w, b)?;
    let losses = cross_entropy_rows_primitive(&logits, labels)?;
    let predictions = logits.detach().argmax(D::Minus1)?;
    Ok((losses, predictions))
}

/// The op: inputs `x`, `w` and `b`; the labels travel with the op (they take no gradient),
/// and the forward leaves the predictions in `predictions` for [`linear_cross_entropy`] and
/// the softmax probabilities for the backward.
struct LinearCrossEntropy {
    labels: Vec<u32>,
    predictions: Arc<Mutex<Vec<u32>>>,
    /// The `(N, classes)` softmax of the logits.
    probabilities: Kept,
    /// Where the gradients of `w` and `b` go.
    routes: [Route; 2],
}

/// The index of each row's largest value (the first, on ties; NaNs are passed over), rows in
/// parallel: the row's maximum in lanes, then the first element equal to it.
fn arg_max_rows(logits: &[f32], classes: usize) -> Vec<u32> {
    logits
        .par_chunks(classes)
        .with_min_len(rows_per_task(classes))
        .map(|row| {
            vectorized!({
                let largest = max(row);
                row.iter().position(|&v| v == largest).unwrap_or(0) as u32
            })
        })
        .collect()
}

impl CustomOp3 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "grove-linear-cross-entropy"
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
        let [x, w, b] = f32_inputs([(s1, l1), (s2, l2), (s3, l3)], self.name())?;
        let (rows, classes) = (l1.shape().dims2()?.0, b.len());
        check_ids(&self.labels, classes, "label", self.name())?;
        let mut logits = affine(x, w, b, rows);
        let losses = row_losses(&logits, &self.labels, classes);
        *self
            .predictions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = arg_max_rows(&logits, classes);
        softmax_rows_in_place(&mut logits, classes);
        self.probabilities.keep(logits);
        Ok((CpuStorage::F32(losses), Shape::from(rows)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        losses: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = output_gradient(grad, losses, self.name())?;
        let (rows, k) = x.dims2()?;
        let classes = b.elem_count();
        let (dx, dw, db) = with_f32([x, w, b, &grad], self.name(), |[x, w, b, g]| {
            let mut dlogits = self.probabilities.take_or(|| {
                let mut logits = affine(x, w, b, rows);
                softmax_rows_in_place(&mut logits, classes);
                logits
            });
            probabilities_to_gradient(&mut dlogits, &self.labels, g, classes);
            // logits = x · Wᵀ + b: ∂x = ∂logits · W, ∂W = ∂logitsᵀ · x, ∂b = column sums.
            let d = Matrix::of(&dlogits, (rows, classes), false);
            let dx = product(d, Matrix::of(w, (classes, k), false), all_threads());
            let d_t = Matrix::of(&dlogits, (rows, classes), true);
            let dw = product(d_t, Matrix::of(x, (rows, k), false), all_threads());
            (dx, dw, column_sums(&dlogits, classes))
        })?;
        let gradient = |d, t: &Tensor| Tensor::from_vec(d, t.shape(), &Device::Cpu);
        let (dw, db) = (gradient(dw, w)?, gradient(db, b)?);
        Ok((
            Some(gradient(dx, x)?),
            self.routes[0].whole_gradient(dw)?,
            self.routes[1].whole_gradient(db)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::arg_max_rows;

    #[test]
    fn arg_max_takes_the_first_of_equal_maxima_and_passes_over_nans() {
        // Rows of 40 values: longer than one AVX-512 lane block, with the maximum past it.
        let mut logits = vec![0f32; 3 * 40];
        logits[7] = 2.0;
        logits[33] = 2.0;
        logits[40] = f32::NAN;
        logits[40 + 38] = 1.5;
        logits[80..120].fill(-1.0);
        assert_eq!(arg_max_rows(&logits, 40), [7, 38, 0]);
    }
}
