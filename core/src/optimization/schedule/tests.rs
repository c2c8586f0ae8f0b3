//! Schedules and warmups against Model Garden's reference values (reference §4.2–4.3) and
//! hand-computed ones where Model Garden lists none.

use super::*;
use crate::config::optimization::{
    ConstantLrConfig, CosineLrConfig, ExponentialLrConfig, LinearWarmupConfig, PolynomialLrConfig,
    PolynomialWarmupConfig, PowerLinearLrConfig, PowerLrConfig, PowerWithOffsetLrConfig,
    StepCosineLrConfig, StepwiseLrConfig, WarmupConfig,
};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

fn constant(lr: f64) -> Box<dyn LearningRateSchedule> {
    Box::new(ConstantLrConfig { learning_rate: lr })
}

fn poly(cycle: bool, offset: i64) -> PolynomialLrConfig {
    PolynomialLrConfig {
        initial_learning_rate: 0.1,
        decay_steps: 1000,
        end_learning_rate: 0.001,
        power: 1.0,
        cycle,
        offset,
    }
}

#[test]
fn polynomial_decay_matches_model_garden() {
    let s = poly(false, 0);
    close(s.learning_rate(0), 0.1);
    close(s.learning_rate(500), 0.0505);
    close(s.learning_rate(1000), 0.001);
    close(s.learning_rate(5000), 0.001);
}

#[test]
fn polynomial_decay_power_cycle_and_offset() {
    let mut s = poly(false, 0);
    s.power = 2.0;
    close(s.learning_rate(500), 0.099 * 0.25 + 0.001);
    let s = poly(true, 0);
    close(s.learning_rate(0), 0.1);
    close(s.learning_rate(1000), 0.001);
    // D' = 2000 at step 1500: p = 0.75.
    close(s.learning_rate(1500), 0.099 * 0.25 + 0.001);
    let s = poly(false, 100);
    close(s.learning_rate(600), 0.0505);
    // step - offset = -100 extrapolates above the initial rate: p = -0.1.
    close(s.learning_rate(0), 0.099 * 1.1 + 0.001);
    let s = poly(true, 100);
    close(s.learning_rate(0), 0.099 * 1.1 + 0.001);
}

#[test]
fn stepwise_matches_model_garden() {
    let s = StepwiseLrConfig {
        boundaries: vec![10000, 20000],
        values: vec![0.1, 0.01, 0.001],
        offset: 0,
    };
    close(s.learning_rate(0), 0.1);
    close(s.learning_rate(10000), 0.1);
    close(s.learning_rate(10001), 0.01);
    close(s.learning_rate(20000), 0.01);
    close(s.learning_rate(20001), 0.001);
    close(s.learning_rate(90000), 0.001);
    let shifted = StepwiseLrConfig { offset: 5000, ..s };
    close(shifted.learning_rate(15000), 0.1);
    close(shifted.learning_rate(15001), 0.01);
    // Before the offset the shifted step is negative: the first value.
    close(shifted.learning_rate(0), 0.1);
}

#[test]
fn exponential_matches_model_garden() {
    let s = ExponentialLrConfig {
        initial_learning_rate: Some(0.1),
        decay_steps: Some(1000),
        decay_rate: Some(0.96),
        staircase: true,
        offset: 0,
    };
    close(s.learning_rate(999), 0.1);
    close(s.learning_rate(1000), 0.096);
    close(s.learning_rate(2000), 0.09216);
    let smooth = ExponentialLrConfig {
        staircase: false,
        ..s.clone()
    };
    close(smooth.learning_rate(500), 0.1 * 0.96f64.sqrt());
    let shifted = ExponentialLrConfig { offset: 1000, ..s };
    close(shifted.learning_rate(2000), 0.096);
}

#[test]
fn cosine_matches_model_garden() {
    let s = CosineLrConfig {
        initial_learning_rate: Some(0.1),
        decay_steps: Some(1000),
        alpha: 0.0,
        offset: 0,
    };
    close(s.learning_rate(0), 0.1);
    close(s.learning_rate(250), 0.0853553390593);
    close(s.learning_rate(500), 0.05);
    close(s.learning_rate(750), 0.0146446609407);
    close(s.learning_rate(1000), 0.0);
    close(s.learning_rate(3000), 0.0);
    let floor = CosineLrConfig {
        alpha: 0.1,
        ..s.clone()
    };
    close(floor.learning_rate(500), 0.1 * (0.9 * 0.5 + 0.1));
    close(floor.learning_rate(2000), 0.01);
    let shifted = CosineLrConfig { offset: 100, ..s };
    close(shifted.learning_rate(600), 0.05);
}

#[test]
fn power_decays_as_a_power_of_the_step() {
    let s = PowerLrConfig {
        initial_learning_rate: Some(1.0),
        power: -0.5,
    };
    close(s.learning_rate(0), 1.0);
    close(s.learning_rate(1), 1.0);
    close(s.learning_rate(4), 0.5);
    close(s.learning_rate(100), 0.1);
}

#[test]
fn power_linear_ramps_to_zero_over_the_last_fraction() {
    let s = PowerLinearLrConfig {
        initial_learning_rate: Some(1.0),
        total_decay_steps: Some(1000),
        power: -0.5,
        linear_decay_fraction: 0.1,
        offset: 0,
    };
    close(s.learning_rate(0), 1.0);
    close(s.learning_rate(100), 0.1);
    // From step 900 the linear factor (1000 - s) / 100 falls below 1.
    close(s.learning_rate(900), 1.0 / 30.0);
    close(s.learning_rate(950), 0.5 / 950f64.sqrt());
    close(s.learning_rate(1000), 0.0);
    close(s.learning_rate(1200), 0.0);
    let no_ramp = PowerLinearLrConfig {
        linear_decay_fraction: 0.0,
        ..s
    };
    close(no_ramp.learning_rate(1600), 0.025);
}

#[test]
fn power_with_offset_holds_before_the_offset_and_caps_after() {
    let s = PowerWithOffsetLrConfig {
        initial_learning_rate: Some(1.0),
        power: -0.5,
        offset: 100,
        pre_offset_learning_rate: 0.5,
    };
    close(s.learning_rate(0), 0.5);
    close(s.learning_rate(100), 0.5);
    // 1 * 1^-0.5 = 1 is capped at the pre-offset rate.
    close(s.learning_rate(101), 0.5);
    close(s.learning_rate(104), 0.5);
    close(s.learning_rate(116), 0.25);
}

#[test]
fn step_cosine_follows_segments_and_holds_the_last_value() {
    let s = StepCosineLrConfig {
        boundaries: vec![0, 1000, 3000],
        values: vec![0.1, 0.01, 0.001],
        offset: 0,
    };
    close(s.learning_rate(0), 0.1);
    close(s.learning_rate(500), 0.055);
    close(s.learning_rate(1000), 0.01);
    close(s.learning_rate(2000), 0.0055);
    close(
        s.learning_rate(2500),
        0.001 + 0.5 * 0.009 * (1.0 + (0.75 * PI_F).cos()),
    );
    // Model Garden gives NaN from the last boundary on; Grove keeps the last value.
    close(s.learning_rate(3000), 0.001);
    close(s.learning_rate(9000), 0.001);
    let shifted = StepCosineLrConfig { offset: 500, ..s };
    close(shifted.learning_rate(1000), 0.055);
}

const PI_F: f64 = std::f64::consts::PI;

#[test]
fn linear_warmup_matches_model_garden() {
    let s = LinearWarmup {
        warmup_learning_rate: 0.01,
        warmup_steps: 500,
        after_warmup: constant(0.1),
    };
    close(s.learning_rate(0), 0.01);
    close(s.learning_rate(250), 0.055);
    close(s.learning_rate(500), 0.1);
    close(s.learning_rate(900), 0.1);
}

#[test]
fn polynomial_warmup_matches_model_garden() {
    let stepwise = StepwiseLrConfig {
        boundaries: vec![10000],
        values: vec![0.1, 0.01],
        offset: 0,
    };
    let s = PolynomialWarmup {
        power: 2.0,
        warmup_steps: 500,
        after_warmup: Box::new(stepwise),
    };
    close(s.learning_rate(0), 0.1 * (1.0f64 / 500.0).powi(2));
    close(s.learning_rate(250), 0.025);
    close(s.learning_rate(500), 0.1);
    close(s.learning_rate(10001), 0.01);
}

#[test]
fn warmup_replaces_first_steps_and_targets_schedule_at_w() {
    let s = LinearWarmup {
        warmup_learning_rate: 0.0,
        warmup_steps: 500,
        after_warmup: Box::new(poly(false, 0)),
    };
    close(s.learning_rate(250), 0.0505 / 2.0);
    close(s.learning_rate(500), 0.0505);
    close(s.learning_rate(750), poly(false, 0).learning_rate(750));
    let s = PolynomialWarmup {
        power: 1.0,
        warmup_steps: 0,
        after_warmup: constant(0.1),
    };
    close(s.learning_rate(0), 0.1);
}

#[test]
fn build_schedule_composes_every_schedule_with_warmup() {
    let mut cfg = OptimizationConfig::default();
    close(build_schedule(&cfg).learning_rate(7), 0.1);
    cfg.learning_rate = LearningRateConfig::from(poly(false, 0));
    close(build_schedule(&cfg).learning_rate(500), 0.0505);
    cfg.warmup = WarmupConfig {
        kind: Some(WarmupType::Linear),
        linear: Some(LinearWarmupConfig {
            warmup_learning_rate: 0.0,
            warmup_steps: Some(500),
        }),
        polynomial: None,
    };
    close(build_schedule(&cfg).learning_rate(250), 0.0505 / 2.0);
    cfg.learning_rate = LearningRateConfig::from(CosineLrConfig {
        initial_learning_rate: Some(0.1),
        decay_steps: Some(1000),
        ..CosineLrConfig::default()
    });
    close(build_schedule(&cfg).learning_rate(250), 0.025);
    close(build_schedule(&cfg).learning_rate(750), 0.0146446609407);
    cfg.warmup = WarmupConfig {
        kind: Some(WarmupType::Polynomial),
        linear: None,
        polynomial: Some(PolynomialWarmupConfig {
            power: 2.0,
            warmup_steps: Some(500),
        }),
    };
    close(build_schedule(&cfg).learning_rate(250), 0.05 / 4.0);
    for kind in [
        LearningRateType::Stepwise,
        LearningRateType::Exponential,
        LearningRateType::Power,
        LearningRateType::PowerLinear,
        LearningRateType::PowerWithOffset,
        LearningRateType::StepCosineWithOffset,
    ] {
        let mut selected = LearningRateConfig::selecting(kind);
        fill_required(&mut selected);
        selected.validate().unwrap();
        cfg.learning_rate = selected.clone();
        let built = build_schedule(&cfg);
        let base = base_schedule(&selected);
        close(built.learning_rate(700), base.learning_rate(700));
        let target = base.learning_rate(500);
        close(built.learning_rate(250), target / 4.0);
    }
}

/// Sets the keys that have no default in the selected branch.
fn fill_required(cfg: &mut LearningRateConfig) {
    if let Some(s) = &mut cfg.stepwise {
        (s.boundaries, s.values) = (vec![400, 600], vec![0.3, 0.2, 0.1]);
    }
    if let Some(s) = &mut cfg.exponential {
        s.initial_learning_rate = Some(0.1);
        s.decay_steps = Some(100);
        s.decay_rate = Some(0.5);
    }
    if let Some(s) = &mut cfg.power {
        s.initial_learning_rate = Some(0.2);
    }
    if let Some(s) = &mut cfg.power_linear {
        s.initial_learning_rate = Some(0.2);
        s.total_decay_steps = Some(1000);
    }
    if let Some(s) = &mut cfg.power_with_offset {
        s.initial_learning_rate = Some(0.2);
    }
    if let Some(s) = &mut cfg.step_cosine_with_offset {
        (s.boundaries, s.values) = (vec![0, 1000], vec![0.1, 0.01]);
    }
}
