//! Grove's training step as a run takes it: the workload's Task driven by the
//! `DefaultTrainer` (input pipeline, forward, backward, optimizer, train metrics).

use std::time::Instant;

use anyhow::anyhow;
use candle_core::Device;
use grove_core::config::ExperimentConfig;
use grove_core::registry::get_task;
use grove_orbit::Trainer;
use grove_trainers::{DefaultTrainer, Roles};

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

/// Milliseconds per training step of `config`: `warmup` steps, then the mean over `steps`
/// steps.
pub fn step_ms(config: &ExperimentConfig, warmup: u64, steps: u64) -> anyhow::Result<f64> {
    let mut trainer = trainer_of(config)?;
    train(&mut trainer, warmup)?;
    let start = Instant::now();
    let logs = train(&mut trainer, steps)?;
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    match logs.get("training_loss") {
        Some(loss) if loss.is_finite() => Ok(ms),
        other => Err(anyhow!("training loss is not finite: {other:?}")),
    }
}

fn train(trainer: &mut DefaultTrainer, steps: u64) -> anyhow::Result<grove_orbit::Logs> {
    trainer
        .train(steps)
        .map_err(|e| anyhow!("training failed: {e}"))
}
