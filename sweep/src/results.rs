//! Reading a trial's evaluations back from its `metrics.jsonl` (the lines of the
//! `validation` split), the record the sweep ranks it by.

use std::path::Path;

use grove_orbit::summary::{read_metric_value, METRICS_FILE};

/// Every `(step, value)` of `key` in the validation lines of `model_dir/metrics.jsonl`, in
/// step order. A step logged twice (a resumed run re-evaluating it) keeps its last line;
/// non-finite values, written as strings, read back as such.
pub fn evaluation_curve(model_dir: &Path, key: &str) -> Vec<(u64, f64)> {
    let Ok(text) = std::fs::read_to_string(model_dir.join(METRICS_FILE)) else {
        return Vec::new();
    };
    let mut curve: Vec<(u64, f64)> = Vec::new();
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // a line cut short by a kill
        };
        if record["split"] != "validation" {
            continue;
        }
        let (Some(step), Some(value)) = (record["step"].as_u64(), read_metric_value(&record[key]))
        else {
            continue;
        };
        curve.retain(|&(s, _)| s != step);
        curve.push((step, value));
    }
    curve.sort_by_key(|&(s, _)| s);
    curve
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_lines_give_the_curve_with_the_last_of_a_repeated_step() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(METRICS_FILE),
            "{\"step\": 10, \"split\": \"train\", \"accuracy\": 0.1}\n\
             {\"step\": 10, \"split\": \"validation\", \"accuracy\": 0.5}\n\
             {\"step\": 20, \"split\": \"validation\", \"accuracy\": 0.6}\n\
             {\"step\": 20, \"split\": \"validation\", \"accuracy\": 0.7}\n\
             {\"step\": 30, \"split\": \"validation\", \"accuracy\": \"NaN\"}\n\
             {\"step\": 40, \"split\": \"validation\", \"acc",
        )
        .unwrap();
        let curve = evaluation_curve(dir.path(), "accuracy");
        assert_eq!(curve[..2], [(10, 0.5), (20, 0.7)]);
        assert!(curve[2].1.is_nan() && curve.len() == 3);
        assert!(evaluation_curve(dir.path(), "missing").is_empty());
    }
}
