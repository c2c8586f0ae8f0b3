//! The progressive trainer on bert/progressive_local: stage of every step, stage switches at
//! loop ends, the optimizer restarting per stage, and the stacking rule.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use grove_core::config::ExperimentConfig;
use grove_core::config::StackingStageConfig;
use grove_core::progressive::{get_progressive_policy, ProgressivePolicy};
use grove_core::vars::ModelVars;
use grove_orbit::Trainer;
use grove_tasks::masked_lm::progressive::stacked_source;
use grove_tasks::models::{BertPretrainer, PretrainerInputs};
use grove_trainers::{ProgressiveTrainer, Roles};

/// 1 → 2 → 4 layers over 25 + 25 + 30 steps: the first boundary is not a multiple of the
/// 10-step loops.
fn stages() -> Vec<StackingStageConfig> {
    [(1, 25), (2, 25), (4, 30)]
        .into_iter()
        .map(|(num_layers, num_steps)| StackingStageConfig {
            num_layers,
            num_steps,
            warmup_steps: 5,
            initial_learning_rate: 3e-3,
            end_learning_rate: 1e-3,
            decay_steps: num_steps,
        })
        .collect()
}

/// bert/progressive_local with [`stages`].
fn config() -> ExperimentConfig {
    grove_experiments::register().unwrap();
    let mut config = grove_experiments::bert::bert_progressive_local();
    config.trainer.progressive.as_mut().unwrap().stage_list = stages();
    config
}

fn policy() -> Box<dyn ProgressivePolicy> {
    let config = config();
    get_progressive_policy(config.task.as_ref(), &config.trainer).unwrap()
}

fn trainer() -> ProgressiveTrainer {
    let mut config = config();
    config.trainer.steps_per_loop = 10;
    config.trainer.train_steps = 80;
    config.trainer.export_checkpoint = false;
    let policy = get_progressive_policy(config.task.as_ref(), &config.trainer).unwrap();
    let roles = Roles {
        train: true,
        evaluate: false,
    };
    let dir = tempfile::tempdir().unwrap();
    ProgressiveTrainer::new(policy, &config, Device::Cpu, roles, dir.path()).unwrap()
}

/// Every variable's values by name.
fn by_name(vars: &ModelVars) -> HashMap<String, Vec<f32>> {
    vars.tensors()
        .into_iter()
        .map(|(name, t)| (name, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn layers(trainer: &ProgressiveTrainer) -> usize {
    let names = trainer.current().vars().tensors();
    (0..)
        .take_while(|i| {
            let prefix = format!("encoder.layer.{i}.");
            names.iter().any(|(n, _)| n.starts_with(&prefix))
        })
        .count()
}

#[test]
fn the_stage_of_every_step_follows_model_garden() {
    let policy = policy();
    for step in 0..200u64 {
        let expected = match step {
            0..25 => 0,
            25..50 => 1,
            _ => 2,
        };
        assert_eq!(policy.stage_of(step), expected, "step {step}");
    }
}

#[test]
fn stages_switch_at_loop_ends_with_a_fresh_optimizer_and_stacked_layers() {
    let mut trainer = trainer();
    assert_eq!((trainer.stage(), layers(&trainer)), (0, 1));
    trainer.train(10).unwrap();
    let logs = trainer.train(10).unwrap();
    assert_eq!(logs["stage"], 0.0);
    assert_eq!(trainer.current().optimizer_iterations(), 20);
    // Step 25 starts stage 1, but the loop to 30 is trained by stage 0 (overshoot).
    let logs = trainer.train(10).unwrap();
    assert_eq!(logs["stage"], 0.0, "the loop 20..30 trains stage 0");
    assert_eq!(trainer.global_step(), 30);
    assert_eq!((trainer.stage(), layers(&trainer)), (1, 2));
    let fresh = trainer.current().optimizer_iterations();
    assert_eq!(fresh, 0, "each stage starts a fresh optimizer");
    let logs = trainer.train(10).unwrap();
    assert_eq!(logs["stage"], 1.0);
    assert_eq!(trainer.current().optimizer_iterations(), 10);
    trainer.train(10).unwrap(); // 40..50, then stage 2
    assert_eq!((trainer.stage(), layers(&trainer)), (2, 4));
    assert_eq!(trainer.current().optimizer_iterations(), 0);
}

/// Sets every ReZero scale of `vars` to a distinct non-zero value, as training would.
fn train_rezero_scales(vars: &ModelVars) {
    for (i, var) in vars
        .named_vars()
        .iter()
        .filter(|v| v.name.ends_with(".rezero_alpha"))
        .enumerate()
    {
        let alpha = Tensor::new(&[0.5f32 + 0.25 * i as f32], &Device::Cpu).unwrap();
        var.var.set(&alpha).unwrap();
    }
}

/// A 2-layer model with trained ReZero scales and the 4-layer model grown from it.
fn grow_2_to_4_layers() -> (ModelVars, BertPretrainer, ModelVars, BertPretrainer) {
    let policy = policy();
    let (old, new) = (ModelVars::new(), ModelVars::new());
    let old_model = policy.get_model(1, None, &old, 7, &Device::Cpu).unwrap();
    train_rezero_scales(&old);
    let new_model = policy
        .get_model(2, Some(&old), &new, 8, &Device::Cpu)
        .unwrap();
    let unbox = |m: Box<dyn std::any::Any + Send>| *m.downcast::<BertPretrainer>().unwrap();
    (old, unbox(old_model), new, unbox(new_model))
}

#[test]
fn a_grown_model_copies_layer_i_from_old_layer_i_mod_k() {
    let (old, _, new, _) = grow_2_to_4_layers();
    let (old, new) = (by_name(&old), by_name(&new));
    assert!(new.contains_key("encoder.layer.3.output.weight"));
    assert!(!old.contains_key("encoder.layer.2.output.weight"));
    for (name, tensor) in &new {
        let duplicated_scale = [
            "encoder.layer.2.rezero_alpha",
            "encoder.layer.3.rezero_alpha",
        ];
        if duplicated_scale.contains(&name.as_str()) {
            assert_eq!(tensor, &[0.0], "{name} restarts at 0, as in Model Garden");
        } else {
            assert_eq!(tensor, &old[&stacked_source(name, 2)], "{name}");
        }
    }
    assert_eq!(old["encoder.layer.1.rezero_alpha"], [0.75]);
    assert_eq!(
        stacked_source("encoder.layer.3.output.weight", 2),
        "encoder.layer.1.output.weight"
    );
}

#[test]
fn growing_a_rezero_model_keeps_its_function() {
    let (_, old, _, new) = grow_2_to_4_layers();
    let dev = Device::Cpu;
    let inputs = PretrainerInputs {
        input_word_ids: Tensor::new(&[[2u32, 17, 99, 3, 41, 5], [2, 8, 300, 7, 3, 0]], &dev)
            .unwrap(),
        input_mask: Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]], &dev).unwrap(),
        input_type_ids: Tensor::new(&[[0u32, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 0]], &dev).unwrap(),
        masked_lm_positions: Tensor::new(&[[1u32, 4], [2, 3]], &dev).unwrap(),
    };
    let (a, b) = (
        old.forward(&inputs, None).unwrap(),
        new.forward(&inputs, None).unwrap(),
    );
    let max_diff = |x: &Tensor, y: &Tensor| {
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(max_diff(&a.mlm_logits, &b.mlm_logits), 0.0);
    for ((name, x), (_, y)) in a.cls_logits.iter().zip(&b.cls_logits) {
        assert_eq!(max_diff(x, y), 0.0, "{name}");
    }
    // Not vacuous: the same 2-layer weights with zero ReZero scales compute another function.
    let vars = ModelVars::new();
    let unscaled = policy().get_model(1, None, &vars, 7, &dev).unwrap();
    let unscaled = unscaled.downcast::<BertPretrainer>().unwrap();
    let c = unscaled.forward(&inputs, None).unwrap();
    assert!(max_diff(&a.mlm_logits, &c.mlm_logits) > 1e-3);
}

#[test]
fn bert_progressive_stacks_3_6_12_layers_over_model_gardens_steps() {
    let config = grove_experiments::bert::bert_progressive();
    config.trainer.validate().unwrap();
    let stages = &config.trainer.progressive.as_ref().unwrap().stage_list;
    let plan: Vec<(usize, u64)> = stages.iter().map(|s| (s.num_layers, s.num_steps)).collect();
    assert_eq!(plan, [(3, 112_500), (6, 112_500), (12, 450_000)]);
    assert_eq!(config.trainer.train_steps, 675_000);
}
