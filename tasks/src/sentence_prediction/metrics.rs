//! Corpus-level metrics computed on the host from all validation predictions: binary F1,
//! Matthews correlation, and the mean of Pearson and Spearman correlations (GLUE's STS-B).

/// F1 of class 1 (0 when there is no true or predicted positive).
pub fn f1_score(predictions: &[f64], labels: &[f64]) -> f64 {
    let count = |p: f64, l: f64| {
        predictions
            .iter()
            .zip(labels)
            .filter(|&(&a, &b)| a == p && b == l)
            .count() as f64
    };
    let (tp, fp, fn_) = (count(1.0, 1.0), count(1.0, 0.0), count(0.0, 1.0));
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

/// The Matthews correlation coefficient of multi-class predictions (Gorodkin's form, which
/// is the usual one for two classes); 0 when it is undefined.
pub fn matthews_corrcoef(predictions: &[f64], labels: &[f64]) -> f64 {
    let classes = predictions
        .iter()
        .chain(labels)
        .fold(0.0f64, |m, &v| m.max(v)) as usize
        + 1;
    let mut confusion = vec![vec![0.0; classes]; classes];
    for (&p, &l) in predictions.iter().zip(labels) {
        confusion[l as usize][p as usize] += 1.0;
    }
    let n: f64 = predictions.len() as f64;
    let correct: f64 = (0..classes).map(|k| confusion[k][k]).sum();
    let true_totals: Vec<f64> = confusion.iter().map(|row| row.iter().sum()).collect();
    let predicted_totals: Vec<f64> = (0..classes)
        .map(|k| confusion.iter().map(|row| row[k]).sum())
        .collect();
    let cross: f64 = (0..classes)
        .map(|k| true_totals[k] * predicted_totals[k])
        .sum();
    let square = |totals: &[f64]| totals.iter().map(|t| t * t).sum::<f64>();
    let denominator = ((n * n - square(&predicted_totals)) * (n * n - square(&true_totals))).sqrt();
    if denominator == 0.0 {
        0.0
    } else {
        (correct * n - cross) / denominator
    }
}

/// Pearson's correlation (0 when a side is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = rank;
        }
        start = end + 1;
    }
    ranks
}

/// Spearman's rank correlation.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn values_computed_by_hand() {
        let predictions = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0];
        let labels = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        // tp 2, fp 1, fn 1, tn 2.
        close(f1_score(&predictions, &labels), 4.0 / 6.0);
        close(
            matthews_corrcoef(&predictions, &labels),
            (2.0 * 2.0 - 1.0) / 9.0,
        );
        close(matthews_corrcoef(&[0.0, 0.0], &[0.0, 1.0]), 0.0);
        close(f1_score(&[0.0, 0.0], &[0.0, 1.0]), 0.0);
        close(
            pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]),
            0.9933992677987828,
        );
        close(spearman(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]), 1.0);
        close(
            spearman(&[1.0, 2.0, 2.0, 4.0], &[1.0, 3.0, 2.0, 4.0]),
            0.9486832980505138,
        );
    }
}
