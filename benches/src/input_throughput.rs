//! `grove-bench input`: the masked LM input pipeline alone over pretraining TFRecord files —
//! stream, shuffle buffer, decode and batching — at BERT-mini's shapes, in records per second.

use std::time::Instant;

use grove_core::registry::get_task;
use grove_core::task::{InputContext, Split};
use serde_json::json;

use crate::workloads::Workload;

/// Pulls `batches` training batches (after `warmup`) from the BERT-mini workload reading
/// `input_path` with `input_threads` decoders; records per second and the time to the first
/// batch.
pub fn measure(
    input_path: &str,
    warmup: u64,
    batches: u64,
    input_threads: usize,
    overrides: &[String],
) -> anyhow::Result<serde_json::Value> {
    let mut sets = vec![
        format!("task.train_data.input_path={input_path}"),
        "task.train_data.file_type=tfrecord".to_string(),
        "task.train_data.use_next_sentence_label=true".to_string(),
        "task.model.cls_heads=[{name: next_sentence, num_classes: 2}]".to_string(),
        "task.train_data.max_predictions_per_seq=20".to_string(),
    ];
    sets.extend(overrides.iter().cloned());
    let config = Workload::Bert.config(&sets)?;
    let task = get_task(config.task.as_ref())?;
    let context = InputContext {
        input_threads,
        ..InputContext::new(config.runtime.seed, Split::Train)
    };
    let started = Instant::now();
    let mut data = task.build_train_inputs(&context)?;
    let mut next = || -> anyhow::Result<usize> {
        let batch = data
            .next_batch()
            .ok_or_else(|| anyhow::anyhow!("the training input ended"))??;
        Ok(batch.size()?)
    };
    let batch_size = next()?;
    let first_batch_s = started.elapsed().as_secs_f64();
    for _ in 1..warmup.max(1) {
        next()?;
    }
    let timed = Instant::now();
    let mut records = 0;
    for _ in 0..batches {
        records += next()?;
    }
    let seconds = timed.elapsed().as_secs_f64();
    let records = records as f64;
    Ok(json!({
        "runner": "input",
        "input_threads": input_threads,
        "batch_size": batch_size,
        "records_per_second": records / seconds,
        "first_batch_seconds": first_batch_s,
    }))
}
