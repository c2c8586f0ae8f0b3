//! Grove's training step as a run takes it: the workload's Task driven by the
//! `DefaultTrainer` (input pipeline, forward, backward, optimizer, train metrics).

use std::time::Instant;

use anyhow::anyhow;
use candle_core::Device;
use grove_core::config::ExperimentConfig;
use grove_core::registry::get_task;
use grove_orbit::Trainer;
use grove_trainers::default_trainer::ALL_REDUCE_FRACTION;
use grove_trainers::{DefaultTrainer, Roles};
use serde_json::json;

/// A `DefaultTrainer` of `config` on the CPU with training inputs only, initialised.
pub fn trainer_of(config: &ExperimentConfig) -> anyhow::Result<DefaultTrainer> {
    let roles = Roles {
        train: true,
        evaluate: false,
    };
    let mut trainer =
        DefaultTrainer::new(get_task(config.task.as_ref())?, config, Device::Cpu, roles)?;
    trainer.initialize()?;
    Ok(trainer)
}

/// Milliseconds per training step of `config` (`ms_per_step`): `warmup` steps, then the mean
/// over `steps` steps; with the model's `parameters` and, with workers, the share of the time
/// spent all-reducing gradients (`all_reduce_fraction`).
pub fn step_report(
    config: &ExperimentConfig,
    warmup: u64,
    steps: u64,
) -> anyhow::Result<serde_json::Value> {
    let mut trainer = trainer_of(config)?;
    train(&mut trainer, warmup)?;
    let start = Instant::now();
    let logs = train(&mut trainer, steps)?;
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    match logs.get("training_loss") {
        Some(loss) if loss.is_finite() => {}
        other => return Err(anyhow!("training loss is not finite: {other:?}")),
    }
    let mut report = json!({
        "ms_per_step": ms,
        "parameters": trainer.vars().parameter_count(),
    });
    if let Some(fraction) = logs.get(ALL_REDUCE_FRACTION) {
        report["all_reduce_fraction"] = json!(fraction);
        report["workers"] = json!(trainer.workers().map_or(1, |w| w.size()));
    }
    Ok(report)
}

fn train(trainer: &mut DefaultTrainer, steps: u64) -> anyhow::Result<grove_orbit::Logs> {
    trainer
        .train(steps)
        .map_err(|e| anyhow!("training failed: {e}"))
}
