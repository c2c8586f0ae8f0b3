//! YAML form, defaults, normalization and validation of the optimization configs.

use super::*;
use crate::error::Error;

const BERT_YAML: &str = "
optimizer: {type: adamw, adamw: {weight_decay_rate: 0.01}}
learning_rate: {type: polynomial, polynomial: {initial_learning_rate: 1.0e-4, decay_steps: 1000}}
warmup: {type: polynomial, polynomial: {warmup_steps: 100}}
";

fn parse(yaml: &str) -> std::result::Result<OptimizationConfig, serde_yaml::Error> {
    serde_yaml::from_str(yaml)
}

fn config_error(cfg: &OptimizationConfig) -> String {
    match cfg.validate() {
        Err(Error::Config(msg)) => msg,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn model_garden_yaml_deserializes() {
    let cfg = parse(BERT_YAML).unwrap();
    assert_eq!(cfg.optimizer.kind, OptimizerType::Adamw);
    let adamw = cfg.optimizer.adamw();
    assert_eq!(adamw.weight_decay_rate, 0.01);
    assert_eq!(adamw.beta_1, 0.9);
    assert_eq!(adamw.epsilon, 1e-7);
    assert_eq!(adamw.gradient_clip_norm, 1.0);
    assert_eq!(
        adamw.exclude_from_weight_decay,
        Some(vec!["LayerNorm".into(), "layer_norm".into(), "bias".into()])
    );
    assert_eq!(cfg.learning_rate.kind, LearningRateType::Polynomial);
    let poly = cfg.learning_rate.polynomial();
    assert_eq!(poly.initial_learning_rate, 1e-4);
    assert_eq!(poly.decay_steps, 1000);
    assert_eq!(poly.end_learning_rate, 1e-4);
    assert_eq!(cfg.warmup.kind, Some(WarmupType::Polynomial));
    assert_eq!(cfg.warmup.polynomial().warmup_steps, Some(100));
    assert_eq!(cfg.warmup.polynomial().power, 1.0);
    cfg.validate().unwrap();
}

#[test]
fn defaults_match_model_garden() {
    let cfg = parse("{}").unwrap();
    assert_eq!(cfg, OptimizationConfig::default());
    assert_eq!(cfg.optimizer.kind, OptimizerType::Sgd);
    assert_eq!(cfg.optimizer.sgd(), SgdConfig::default());
    assert_eq!(cfg.learning_rate.constant().learning_rate, 0.1);
    assert_eq!(cfg.warmup.kind, None);
    assert_eq!(parse("warmup: {type: null}").unwrap().warmup.kind, None);
    cfg.validate().unwrap();
}

#[test]
fn unknown_keys_are_rejected() {
    for yaml in [
        "optimiser: {}",
        "optimizer: {type: adamw, adamw: {weight_decay: 0.01}}",
        "learning_rate: {type: polynomial, polynomial: {decay_step: 10}}",
        "warmup: {linear: {steps: 10}}",
    ] {
        let err = parse(yaml).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{yaml}: {err}");
    }
    assert!(parse("optimizer: {type: adafactor}").is_err());
}

#[test]
fn switching_type_takes_branch_defaults() {
    let cfg = parse("optimizer: {type: adamw}").unwrap();
    assert_eq!(cfg.optimizer.adamw(), AdamWConfig::default());
    let cfg = parse("learning_rate: {type: polynomial}").unwrap();
    assert_eq!(
        cfg.learning_rate.polynomial(),
        PolynomialLrConfig::default()
    );
}

#[test]
fn normalized_keeps_only_selected_branches() {
    let cfg = parse(BERT_YAML).unwrap();
    assert!(cfg.optimizer.sgd.is_some() && cfg.learning_rate.constant.is_some());
    let cfg = cfg.normalized();
    let yaml = serde_yaml::to_string(&cfg).unwrap();
    for dropped in ["sgd", "constant", "linear", "momentum"] {
        assert!(!yaml.contains(dropped), "{dropped} in {yaml}");
    }
    assert_eq!(parse(&yaml).unwrap().normalized(), cfg);

    let yaml = serde_yaml::to_string(&OptimizationConfig::default().normalized()).unwrap();
    assert!(yaml.contains("sgd") && yaml.contains("constant"), "{yaml}");
    assert!(
        !yaml.contains("adamw") && !yaml.contains("polynomial"),
        "{yaml}"
    );
    assert!(yaml.contains("type: null"), "{yaml}");
    let selected = parse("optimizer: {type: adamw}").unwrap().normalized();
    assert_eq!(selected.optimizer.adamw, Some(AdamWConfig::default()));
}

#[test]
fn validate_names_key_value_and_range() {
    let mut cfg = parse(BERT_YAML).unwrap();
    cfg.learning_rate.polynomial.as_mut().unwrap().decay_steps = 0;
    let msg = config_error(&cfg);
    assert!(
        msg.contains("trainer.optimizer_config.learning_rate.polynomial.decay_steps")
            && msg.contains("got 0")
            && msg.contains(">= 1"),
        "{msg}"
    );

    let cases = [
        (
            "learning_rate: {constant: {learning_rate: -0.1}}",
            "learning_rate.constant.learning_rate",
        ),
        (
            "learning_rate: {type: polynomial, polynomial: {end_learning_rate: .nan}}",
            "learning_rate.polynomial.end_learning_rate",
        ),
        (
            "optimizer: {type: adamw, adamw: {beta_1: 1.0}}",
            "optimizer.adamw.beta_1",
        ),
        (
            "optimizer: {type: adamw, adamw: {beta_2: -0.1}}",
            "optimizer.adamw.beta_2",
        ),
        (
            "optimizer: {type: adamw, adamw: {epsilon: 0.0}}",
            "optimizer.adamw.epsilon",
        ),
        (
            "optimizer: {type: adamw, adamw: {gradient_clip_norm: -1.0}}",
            "optimizer.adamw.gradient_clip_norm",
        ),
        (
            "optimizer: {type: adamw, adamw: {exclude_from_weight_decay: [bias, 'a(']}}",
            "optimizer.adamw.exclude_from_weight_decay[1]",
        ),
        (
            "optimizer: {sgd: {momentum: -0.5}}",
            "optimizer.sgd.momentum",
        ),
        ("warmup: {type: linear}", "warmup.linear.warmup_steps"),
        (
            "learning_rate: {type: stepwise, stepwise: {boundaries: [10, 5], values: [3, 2, 1]}}",
            "learning_rate.stepwise.boundaries",
        ),
        (
            "learning_rate: {type: stepwise, stepwise: {boundaries: [10], values: [3]}}",
            "learning_rate.stepwise.values",
        ),
        (
            "learning_rate: {type: step_cosine_with_offset, step_cosine_with_offset: \
             {boundaries: [5, 10], values: [1, 0.1]}}",
            "learning_rate.step_cosine_with_offset.boundaries",
        ),
        (
            "learning_rate: {type: step_cosine_with_offset, step_cosine_with_offset: \
             {boundaries: [0, 10], values: [1, 0.1, 0.01]}}",
            "learning_rate.step_cosine_with_offset.values",
        ),
        (
            "learning_rate: {type: exponential, exponential: {decay_steps: 10, decay_rate: 0.5}}",
            "learning_rate.exponential.initial_learning_rate",
        ),
        (
            "learning_rate: {type: cosine, cosine: {initial_learning_rate: 0.1}}",
            "learning_rate.cosine.decay_steps",
        ),
        (
            "learning_rate: {type: power_linear, power_linear: {initial_learning_rate: 0.1, \
             total_decay_steps: 10, linear_decay_fraction: 2}}",
            "learning_rate.power_linear.linear_decay_fraction",
        ),
        (
            "optimizer: {type: lamb, lamb: {beta_2: 1.5}}",
            "optimizer.lamb.beta_2",
        ),
        (
            "optimizer: {type: lars, lars: {exclude_from_layer_adaptation: ['(']}}",
            "optimizer.lars.exclude_from_layer_adaptation[0]",
        ),
        (
            "optimizer: {type: rmsprop, rmsprop: {rho: 1.0}}",
            "optimizer.rmsprop.rho",
        ),
        (
            "optimizer: {type: adagrad, adagrad: {epsilon: 0}}",
            "optimizer.adagrad.epsilon",
        ),
        (
            "optimizer: {type: adam, adam: {clipvalue: -1}}",
            "optimizer.adam.clipvalue",
        ),
        ("ema: {average_decay: 1.5}", "ema.average_decay"),
        (
            "ema: {trainable_weights_only: false}",
            "ema.trainable_weights_only",
        ),
    ];
    for (yaml, key) in cases {
        let msg = config_error(&parse(yaml).unwrap());
        assert!(
            msg.contains(&format!("trainer.optimizer_config.{key}")),
            "{yaml}: {msg}"
        );
    }

    // Unselected branches are not checked.
    parse("optimizer: {type: sgd, adamw: {beta_1: 2.0}}")
        .unwrap()
        .validate()
        .unwrap();
    parse("warmup: {type: polynomial, polynomial: {warmup_steps: 0}}")
        .unwrap()
        .validate()
        .unwrap();
}

#[test]
fn an_optional_one_of_selects_nothing_with_a_null_type() {
    let cfg = parse("warmup: {type: null, linear: {warmup_steps: 5}}").unwrap();
    assert_eq!(cfg.warmup.kind, None);
    assert!(cfg.validate().is_ok());
    assert_eq!(cfg.warmup.clone().normalized(), WarmupConfig::default());
    let linear = WarmupConfig::from(LinearWarmupConfig {
        warmup_steps: Some(5),
        ..LinearWarmupConfig::default()
    });
    assert_eq!(linear.kind, Some(WarmupType::Linear));
    assert_eq!(linear.linear().warmup_steps, Some(5));
}
