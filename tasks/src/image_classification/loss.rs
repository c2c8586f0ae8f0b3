//! Cross-entropy with label smoothing, and per-example correctness for accuracy and top-k
//! accuracy.

use candle_core::{DType, Result, Tensor, D};

/// Per-example values of one batch.
pub struct Scores {
    /// Cross-entropy against the smoothed target, (N).
    pub per_example_loss: Tensor,
    /// 1 where the label has the highest logit, (N).
    pub correct: Tensor,
    /// 1 where fewer than `k` classes score higher than the label, (N).
    pub top_k_correct: Tensor,
}

/// Scores `logits` (N, K) against `labels` (N). With label smoothing `ε` the target is
/// `1 − ε` on the label plus `ε / K` on every class (Keras' `label_smoothing`), so the loss is
/// `−(1 − ε)·log p_label − ε·mean_k log p_k`, computed as `CE + ε·(x_label − mean_k x_k)`
/// (the same value, through the fused cross-entropy).
pub fn score(logits: &Tensor, labels: &Tensor, smoothing: f64, k: usize) -> Result<Scores> {
    let labels = labels.to_dtype(DType::U32)?;
    let cross_entropy = grove_kernels::cross_entropy_rows(logits, &labels)?;
    let labels = labels.unsqueeze(1)?;
    let per_example_loss = if smoothing > 0.0 {
        let label_logit = logits.gather(&labels, 1)?.squeeze(1)?;
        let spread = (label_logit - logits.mean(D::Minus1)?)?.affine(smoothing, 0.0)?;
        (cross_entropy + spread)?
    } else {
        cross_entropy
    };
    let logits = logits.detach();
    let label_logit = logits.gather(&labels, 1)?;
    let above = logits
        .broadcast_gt(&label_logit)?
        .to_dtype(DType::F32)?
        .sum(D::Minus1)?;
    Ok(Scores {
        per_example_loss,
        correct: above.lt(0.5)?.to_dtype(DType::F32)?,
        top_k_correct: above.lt(k as f64 - 0.5)?.to_dtype(DType::F32)?,
    })
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_vec1().unwrap()
    }

    #[test]
    fn smoothing_accuracy_and_top_k_follow_their_definitions() {
        let logits = [[2.0f32, 1.0, 0.0], [0.0, 1.0, 2.0]];
        let logits = Tensor::new(&logits, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let log_z = (2f64.exp() + 1f64.exp() + 1.0).ln();
        let log_p = [2.0 - log_z, 1.0 - log_z, -log_z];
        let plain = score(&logits, &labels, 0.0, 2).unwrap();
        let want = [-log_p[0], -log_p[1]];
        for (got, want) in values(&plain.per_example_loss).iter().zip(want) {
            assert!((f64::from(*got) - want).abs() < 1e-5);
        }
        assert_eq!(values(&plain.correct), [1.0, 0.0]);
        assert_eq!(values(&plain.top_k_correct), [1.0, 1.0]);
        let smoothed = score(&logits, &labels, 0.3, 1).unwrap();
        let mean = log_p.iter().sum::<f64>() / 3.0;
        let want = -(0.7 * log_p[0] + 0.3 * mean);
        let got = f64::from(values(&smoothed.per_example_loss)[0]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert_eq!(values(&smoothed.top_k_correct), [1.0, 0.0]);
    }
}
