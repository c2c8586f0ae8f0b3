//! A bare loop over the workload's Grove Task, without the `DefaultTrainer`: next batch,
//! `train_step` (forward and loss), backward, optimizer update, each phase timed. It runs the
//! whole batch as one replica whose ops use every compute thread (the `one_device` step; the
//! `grove` runner splits the batch over replicas, whose forward and backward passes overlap
//! and cannot be timed apart), and splits that step into forward / backward / optimizer time.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure};
use candle_core::{DType, Device};
use grove_core::config::ExperimentConfig;
use grove_core::optimization::build_optimizer_with_ema;
use grove_core::optimization::schedule::build_schedule;
use grove_core::registry::get_task;
use grove_core::task::{InputContext, Split, StepContext};
use grove_core::vars::ModelVars;
use grove_kernels::DirectGradients;
use serde_json::{json, Value};

/// Time per phase, summed over the timed steps.
#[derive(Default)]
struct Phases {
    input: Duration,
    forward: Duration,
    backward: Duration,
    optimizer: Duration,
}

/// Runs `warmup` then `steps` timed steps of `config`; returns ms per step and per phase.
pub fn measure(config: &ExperimentConfig, warmup: u64, steps: u64) -> anyhow::Result<Value> {
    let task = get_task(config.task.as_ref())?;
    let vars = ModelVars::new();
    let model =
        task.build_model(vars.var_builder(config.runtime.seed, DType::F32, &Device::Cpu))?;
    task.initialize(model.as_ref(), &vars)?;
    let optimization = &config.trainer.optimizer_config;
    let mut optimizer = build_optimizer_with_ema(optimization)?;
    let schedule = build_schedule(optimization);
    let context = InputContext::new(config.runtime.seed, Split::Train);
    let mut data = task.build_train_inputs(&context)?;
    let params = vars.named_vars();
    let mut phases = Phases::default();
    let mut total = Duration::ZERO;
    let mut last_loss = 0f32;
    for step in 0..warmup + steps {
        let timed = step >= warmup;
        let t0 = Instant::now();
        let batch = data
            .next_batch()
            .ok_or_else(|| anyhow!("the training inputs ended"))??;
        let t1 = Instant::now();
        let mut step_context = StepContext {
            global_step: step,
            dropout: None,
        };
        let direct = DirectGradients::start();
        let outputs = task.train_step(&batch, model.as_ref(), &mut step_context)?;
        let loss = outputs.loss();
        let t2 = Instant::now();
        let grads = direct.backward(loss)?;
        let t3 = Instant::now();
        optimizer.apply(
            &params,
            &grads,
            schedule.learning_rate(optimizer.iterations()),
        )?;
        let t4 = Instant::now();
        if timed {
            phases.input += t1 - t0;
            phases.forward += t2 - t1;
            phases.backward += t3 - t2;
            phases.optimizer += t4 - t3;
            total += t4 - t0;
            last_loss = loss.to_scalar::<f32>()?;
        }
    }
    ensure!(
        last_loss.is_finite(),
        "training loss is not finite: {last_loss}"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / steps as f64;
    Ok(json!({
        "ms_per_step": ms(total),
        "input_ms": ms(phases.input),
        "forward_ms": ms(phases.forward),
        "backward_ms": ms(phases.backward),
        "optimizer_ms": ms(phases.optimizer),
    }))
}
