//! Adam, LAMB, LARS, RMSprop, Adagrad and Keras' clipping keys against f64 references, and a
//! state round trip for every optimizer type.

use super::*;
use crate::config::optimization::{
    AdagradConfig, AdamConfig, LambConfig, LarsConfig, OptimizerType, RmspropConfig,
};

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// `coefficient·‖w‖/‖u‖`, or 1 when a norm is 0.
fn ratio(w: &[f64], u: &[f64], coefficient: f64) -> f64 {
    if norm(w) > 0.0 && norm(u) > 0.0 {
        coefficient * norm(w) / norm(u)
    } else {
        1.0
    }
}

/// Per-variable slot vectors for the two vars of the problem.
fn zeros() -> [Vec<f64>; 2] {
    [vec![0.0; 3], vec![0.0; 2]]
}

fn adam_reference(cfg: &AdamConfig) -> [Vec<f64>; 2] {
    let (mut m, mut v, mut vhat) = (zeros(), zeros(), zeros());
    reference(|k, w, g, lr, t| {
        let (b1, b2) = (cfg.beta_1, cfg.beta_2);
        let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        for i in 0..w.len() {
            m[k][i] = b1 * m[k][i] + (1.0 - b1) * g[i];
            v[k][i] = b2 * v[k][i] + (1.0 - b2) * g[i] * g[i];
            vhat[k][i] = vhat[k][i].max(v[k][i]);
            let denominator = if cfg.amsgrad { vhat[k][i] } else { v[k][i] };
            w[i] -= lr_t * m[k][i] / (denominator.sqrt() + cfg.epsilon);
        }
    })
}

#[test]
fn adam_and_amsgrad_match_reference() {
    for amsgrad in [false, true] {
        let cfg = AdamConfig {
            amsgrad,
            epsilon: 1e-3,
            ..AdamConfig::default()
        };
        let opt = check(build(cfg.clone()), adam_reference(&cfg));
        let slots = opt.state().len();
        assert_eq!(slots, if amsgrad { 6 } else { 4 });
    }
}

#[test]
fn lamb_matches_reference() {
    let cfg = LambConfig {
        weight_decay_rate: 0.01,
        exclude_from_weight_decay: Some(vec!["bias".into()]),
        ..LambConfig::default()
    };
    let (mut m, mut v) = (zeros(), zeros());
    let want = reference(|k, w, g, lr, t| {
        let (b1, b2) = (cfg.beta_1, cfg.beta_2);
        let mut u = vec![0.0; w.len()];
        for i in 0..w.len() {
            m[k][i] = b1 * m[k][i] + (1.0 - b1) * g[i];
            v[k][i] = b2 * v[k][i] + (1.0 - b2) * g[i] * g[i];
            let m_hat = m[k][i] / (1.0 - b1.powi(t));
            let v_hat = v[k][i] / (1.0 - b2.powi(t));
            u[i] = m_hat / (v_hat.sqrt() + cfg.epsilon);
            // Var 0 (the weight) decays; the bias is excluded from decay and adaptation.
            if k == 0 {
                u[i] += cfg.weight_decay_rate * w[i];
            }
        }
        let r = if k == 0 { ratio(w, &u, 1.0) } else { 1.0 };
        for i in 0..w.len() {
            w[i] -= r * lr * u[i];
        }
    });
    check(build(cfg), want);
}

fn lars_reference(cfg: &LarsConfig) -> [Vec<f64>; 2] {
    let mut v = zeros();
    let mm = cfg.momentum;
    reference(|k, w, g, lr, _| {
        let decays = k == 0;
        let g: Vec<f64> = (0..w.len())
            .map(|i| {
                g[i] + if decays {
                    cfg.weight_decay_rate * w[i]
                } else {
                    0.0
                }
            })
            .collect();
        if cfg.classic_momentum {
            let r = if decays { ratio(w, &g, cfg.eeta) } else { 1.0 };
            for i in 0..w.len() {
                v[k][i] = mm * v[k][i] + r * lr * g[i];
                let update = if cfg.nesterov {
                    mm * v[k][i] + r * lr * g[i]
                } else {
                    v[k][i]
                };
                w[i] -= update;
            }
        } else {
            let mut update = vec![0.0; w.len()];
            for i in 0..w.len() {
                v[k][i] = mm * v[k][i] + g[i];
                update[i] = if cfg.nesterov {
                    mm * v[k][i] + g[i]
                } else {
                    v[k][i]
                };
            }
            let r = if decays {
                ratio(w, &update, cfg.eeta)
            } else {
                1.0
            };
            for i in 0..w.len() {
                w[i] -= r * lr * update[i];
            }
        }
    })
}

#[test]
fn lars_matches_reference_in_every_momentum_form() {
    for (classic_momentum, nesterov) in [(true, false), (true, true), (false, false), (false, true)]
    {
        let cfg = LarsConfig {
            eeta: 0.5,
            weight_decay_rate: 0.01,
            nesterov,
            classic_momentum,
            exclude_from_weight_decay: Some(vec!["bias".into()]),
            ..LarsConfig::default()
        };
        check(build(cfg.clone()), lars_reference(&cfg));
    }
}

fn rmsprop_reference(cfg: &RmspropConfig) -> [Vec<f64>; 2] {
    let (mut rms, mut mg, mut mom) = (zeros(), zeros(), zeros());
    reference(|k, w, g, lr, _| {
        let rho = cfg.rho;
        for i in 0..w.len() {
            rms[k][i] = rho * rms[k][i] + (1.0 - rho) * g[i] * g[i];
            let mut denominator = rms[k][i];
            if cfg.centered {
                mg[k][i] = rho * mg[k][i] + (1.0 - rho) * g[i];
                denominator -= mg[k][i] * mg[k][i];
            }
            if cfg.momentum > 0.0 {
                mom[k][i] =
                    cfg.momentum * mom[k][i] + lr * g[i] / (denominator + cfg.epsilon).sqrt();
                w[i] -= mom[k][i];
            } else {
                w[i] -= lr * g[i] / (denominator.sqrt() + cfg.epsilon);
            }
        }
    })
}

#[test]
fn rmsprop_matches_reference_plain_centered_and_with_momentum() {
    for (centered, momentum) in [(false, 0.0), (true, 0.0), (false, 0.9), (true, 0.9)] {
        let cfg = RmspropConfig {
            centered,
            momentum,
            epsilon: 1e-3,
            ..RmspropConfig::default()
        };
        check(build(cfg.clone()), rmsprop_reference(&cfg));
    }
}

#[test]
fn adagrad_matches_reference() {
    let cfg = AdagradConfig::default();
    let mut acc = [
        vec![cfg.initial_accumulator_value; 3],
        vec![cfg.initial_accumulator_value; 2],
    ];
    let want = reference(|k, w, g, lr, _| {
        for i in 0..w.len() {
            acc[k][i] += g[i] * g[i];
            w[i] -= lr * g[i] / (acc[k][i].sqrt() + cfg.epsilon);
        }
    });
    check(build(cfg), want);
}

/// Plain SGD on gradients transformed as Keras' clipping keys do.
fn clipped_sgd_reference(clipping: impl Fn(&[Vec<f64>; 2]) -> [Vec<f64>; 2]) -> [Vec<f64>; 2] {
    let mut w = [W0.to_vec(), B0.to_vec()];
    for (step, lr) in LRS.iter().enumerate() {
        let g = clipping(&[GRADS[step].0.to_vec(), GRADS[step].1.to_vec()]);
        for k in 0..2 {
            for i in 0..w[k].len() {
                w[k][i] -= lr * g[k][i];
            }
        }
    }
    w
}

fn scaled(g: &[f64], factor: f64) -> Vec<f64> {
    g.iter().map(|x| x * factor).collect()
}

#[test]
fn clipping_keys_match_keras() {
    let clip = |limit: f64, n: f64| if n > limit { limit / n } else { 1.0 };
    let per_var = SgdConfig {
        clipnorm: Some(0.5),
        ..SgdConfig::default()
    };
    let want = clipped_sgd_reference(|g| g.clone().map(|v| scaled(&v, clip(0.5, norm(&v)))));
    check(build(per_var), want);

    let global = SgdConfig {
        global_clipnorm: Some(1.0),
        ..SgdConfig::default()
    };
    let want = clipped_sgd_reference(|g| {
        let all: Vec<f64> = g.iter().flatten().copied().collect();
        let factor = clip(1.0, norm(&all));
        g.clone().map(|v| scaled(&v, factor))
    });
    check(build(global), want);

    let by_value = SgdConfig {
        clipvalue: Some(0.3),
        ..SgdConfig::default()
    };
    let want = clipped_sgd_reference(|g| {
        g.clone()
            .map(|v| v.iter().map(|x| x.clamp(-0.3, 0.3)).collect())
    });
    check(build(by_value), want);
}

#[test]
fn clipnorm_and_global_clipnorm_together_are_rejected() {
    let cfg = OptimizerConfig::from(AdamConfig {
        clipnorm: Some(1.0),
        global_clipnorm: Some(1.0),
        ..AdamConfig::default()
    });
    let msg = match cfg.validate() {
        Err(Error::Config(msg)) => msg,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert!(
        msg.contains("trainer.optimizer_config.optimizer.adam"),
        "{msg}"
    );
    assert!(msg.contains("global_clipnorm"), "{msg}");
}

#[test]
fn every_optimizer_state_round_trips() {
    for kind in [
        OptimizerType::Sgd,
        OptimizerType::Adam,
        OptimizerType::Adamw,
        OptimizerType::Lamb,
        OptimizerType::Lars,
        OptimizerType::Rmsprop,
        OptimizerType::Adagrad,
    ] {
        let mut cfg = OptimizerConfig::selecting(kind);
        // Turn on every optional slot.
        if let Some(sgd) = &mut cfg.sgd {
            sgd.momentum = 0.9;
        }
        if let Some(adam) = &mut cfg.adam {
            adam.amsgrad = true;
        }
        if let Some(rmsprop) = &mut cfg.rmsprop {
            (rmsprop.centered, rmsprop.momentum) = (true, 0.5);
        }
        check_round_trip(|| build_optimizer(&cfg).unwrap());
    }
}
