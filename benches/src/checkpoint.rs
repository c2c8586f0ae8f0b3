//! Checkpoint save (including fsync) and restore throughput of the `DefaultTrainer`, on a
//! BERT of about 38M parameters (vocab 30522, hidden 768, 2 layers) after one AdamW step, so
//! the optimizer's slots are written too (about 460 MB in all).

use std::path::Path;
use std::time::Instant;

use anyhow::anyhow;
use grove_core::config::{resolve, ConfigSources};
use grove_core::registry::get_experiment;
use grove_orbit::{Checkpointable, Trainer};
use serde_json::json;

/// The shape overrides of the checkpointed model, on bert/local.
const MODEL: [&str; 5] = [
    "task.model.encoder.bert.vocab_size=30522",
    "task.model.encoder.bert.hidden_size=768",
    "task.model.encoder.bert.num_attention_heads=12",
    "task.model.encoder.bert.intermediate_size=3072",
    "task.train_data.global_batch_size=2",
];

/// Saves a checkpoint into a fresh directory under `dir` and restores it, `rounds` times;
/// returns the JSON report: bytes, the first save and restore (the process's buffers are
/// fresh memory then), the median and every round's MB/s.
pub fn measure(dir: &Path, rounds: usize) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(rounds > 0, "--rounds must be positive");
    grove_experiments::register()?;
    let sources = ConfigSources {
        trailing_overrides: MODEL.iter().map(|s| s.to_string()).collect(),
        ..ConfigSources::default()
    };
    let config = resolve(&get_experiment("bert/local")?, &sources)?;
    let mut trainer = crate::grove_step::trainer_of(&config)?;
    trainer
        .train(1)
        .map_err(|e| anyhow!("training failed: {e}"))?;
    let (mut saves, mut restores, mut bytes) = (Vec::new(), Vec::new(), 0);
    for round in 0..rounds {
        let target = tempfile::Builder::new()
            .prefix(&format!("ckpt-{round}-"))
            .tempdir_in(dir)?;
        let start = Instant::now();
        trainer
            .save(target.path())
            .map_err(|e| anyhow!("saving failed: {e}"))?;
        let saved = start.elapsed().as_secs_f64();
        bytes = directory_bytes(target.path())?;
        let start = Instant::now();
        trainer
            .restore(target.path())
            .map_err(|e| anyhow!("restoring failed: {e}"))?;
        let restored = start.elapsed().as_secs_f64();
        saves.push(bytes as f64 / 1e6 / saved);
        restores.push(bytes as f64 / 1e6 / restored);
    }
    Ok(json!({
        "bytes": bytes,
        "first_save_mb_per_s": saves[0],
        "first_restore_mb_per_s": restores[0],
        "save_mb_per_s": median(&mut saves.clone()),
        "restore_mb_per_s": median(&mut restores.clone()),
        "save_mb_per_s_all": saves,
        "restore_mb_per_s_all": restores,
    }))
}

/// Total size of the files in `dir`.
fn directory_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

/// The median of `values` (sorted in place); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
