//! Update rules checked against hand-written f64 references on a tiny fixed problem: SGD and
//! AdamW here, the other Keras optimizers and the clipping keys in [`keras`], the moving
//! average in [`ema`].

mod ema;
mod keras;

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use super::*;
use crate::config::optimization::{AdamWConfig, OptimizerConfig, SgdConfig};
use crate::error::Error;

/// Initial values of the two vars of the problem.
const W0: [f64; 3] = [1.0, -2.0, 0.5];
const B0: [f64; 2] = [0.25, -0.75];
/// Gradients of step 1 and step 2 (weight, bias).
const GRADS: [([f64; 3], [f64; 2]); 2] = [
    ([0.5, -1.0, 2.0], [0.1, -0.3]),
    ([-0.25, 0.75, 1.5], [0.4, 0.2]),
];
const LRS: [f64; 2] = [0.1, 0.05];

fn params() -> Vec<NamedVar> {
    let dev = Device::Cpu;
    let w = Var::from_vec(W0.map(|x| x as f32).to_vec(), 3, &dev).unwrap();
    let b = Var::from_vec(B0.map(|x| x as f32).to_vec(), 2, &dev).unwrap();
    vec![
        NamedVar::new("dense.weight", w),
        NamedVar::new("dense.bias", b),
    ]
}

fn grad_store(params: &[NamedVar], step: usize) -> GradStore {
    let (gw, gb) = GRADS[step];
    let mut grads = GradStore::default();
    let dev = Device::Cpu;
    let gw = Tensor::new(&gw.map(|x| x as f32), &dev).unwrap();
    let gb = Tensor::new(&gb.map(|x| x as f32), &dev).unwrap();
    grads.insert(params[0].var.as_tensor(), gw);
    grads.insert(params[1].var.as_tensor(), gb);
    grads
}

fn values(param: &NamedVar) -> Vec<f64> {
    let v: Vec<f32> = param.var.as_tensor().to_vec1().unwrap();
    v.into_iter().map(f64::from).collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{what}: got {got:?}, want {want:?}");
    }
}

/// Runs `opt` for both steps of the problem and returns the updated vars.
fn run(opt: &mut dyn Optimizer) -> Vec<NamedVar> {
    let params = params();
    for (step, lr) in LRS.iter().enumerate() {
        opt.apply(&params, &grad_store(&params, step), *lr).unwrap();
    }
    assert_eq!(opt.iterations(), 2);
    params
}

/// The optimizer a one-of branch selects.
fn build(branch: impl Into<OptimizerConfig>) -> Box<dyn Optimizer> {
    build_optimizer(&branch.into()).unwrap()
}

fn sgd(momentum: f64, nesterov: bool) -> Box<dyn Optimizer> {
    build(SgdConfig {
        momentum,
        nesterov,
        ..SgdConfig::default()
    })
}

fn adamw(cfg: AdamWConfig) -> Box<dyn Optimizer> {
    build(cfg)
}

/// Runs a per-variable f64 reference over both steps of the problem:
/// `update(var index, weights, gradient, lr, t)` with `t` the 1-based step.
fn reference(mut update: impl FnMut(usize, &mut [f64], &[f64], f64, i32)) -> [Vec<f64>; 2] {
    let mut w = [W0.to_vec(), B0.to_vec()];
    for (step, lr) in LRS.iter().enumerate() {
        let g = [GRADS[step].0.to_vec(), GRADS[step].1.to_vec()];
        for k in 0..2 {
            update(k, &mut w[k], &g[k], *lr, step as i32 + 1);
        }
    }
    w
}

/// Runs `opt` over both steps and compares both vars with `want`.
fn check(mut opt: Box<dyn Optimizer>, want: [Vec<f64>; 2]) -> Box<dyn Optimizer> {
    let params = run(opt.as_mut());
    assert_close(&values(&params[0]), &want[0], "weight");
    assert_close(&values(&params[1]), &want[1], "bias");
    opt
}

/// Keras SGD in f64 for one var over both steps.
fn sgd_reference(w0: &[f64], grads: [&[f64]; 2], momentum: f64, nesterov: bool) -> Vec<f64> {
    let mut w = w0.to_vec();
    let mut v = vec![0.0; w.len()];
    for (g, lr) in grads.iter().zip(LRS) {
        for i in 0..w.len() {
            if momentum == 0.0 {
                w[i] -= lr * g[i];
                continue;
            }
            v[i] = momentum * v[i] - lr * g[i];
            w[i] += if nesterov {
                momentum * v[i] - lr * g[i]
            } else {
                v[i]
            };
        }
    }
    w
}

fn check_sgd(momentum: f64, nesterov: bool) {
    let mut opt = sgd(momentum, nesterov);
    let params = run(opt.as_mut());
    let want_w = sgd_reference(&W0, [&GRADS[0].0, &GRADS[1].0], momentum, nesterov);
    let want_b = sgd_reference(&B0, [&GRADS[0].1, &GRADS[1].1], momentum, nesterov);
    assert_close(&values(&params[0]), &want_w, "weight");
    assert_close(&values(&params[1]), &want_b, "bias");
    let names: Vec<String> = opt.state().into_iter().map(|(n, _)| n).collect();
    if momentum == 0.0 {
        assert!(names.is_empty());
    } else {
        assert_eq!(names, ["dense.bias/momentum", "dense.weight/momentum"]);
    }
}

#[test]
fn sgd_plain_matches_reference() {
    check_sgd(0.0, false);
}

#[test]
fn sgd_momentum_matches_reference() {
    check_sgd(0.9, false);
}

#[test]
fn sgd_nesterov_matches_reference() {
    check_sgd(0.9, true);
}

/// Model Garden's AdamWeightDecay in f64 over both steps for all vars at once (clipping
/// needs the global norm). `decays[k]` says whether var k gets weight decay.
fn adamw_reference(cfg: &AdamWConfig, decays: [bool; 2]) -> [Vec<f64>; 2] {
    let mut w = [W0.to_vec(), B0.to_vec()];
    let mut m = [vec![0.0; 3], vec![0.0; 2]];
    let mut v = [vec![0.0; 3], vec![0.0; 2]];
    for (step, lr) in LRS.iter().enumerate() {
        let g = [GRADS[step].0.to_vec(), GRADS[step].1.to_vec()];
        let norm = g.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
        let clip = cfg.gradient_clip_norm;
        let scale = if clip > 0.0 && norm > clip {
            clip / norm
        } else {
            1.0
        };
        let t = (step + 1) as i32;
        let (b1, b2) = (cfg.beta_1, cfg.beta_2);
        let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        for k in 0..2 {
            for i in 0..w[k].len() {
                let gi = g[k][i] * scale;
                m[k][i] = b1 * m[k][i] + (1.0 - b1) * gi;
                v[k][i] = b2 * v[k][i] + (1.0 - b2) * gi * gi;
                if decays[k] {
                    w[k][i] -= lr * cfg.weight_decay_rate * w[k][i];
                }
                w[k][i] -= lr_t * m[k][i] / (v[k][i].sqrt() + cfg.epsilon);
            }
        }
    }
    w
}

fn check_adamw(cfg: AdamWConfig, decays: [bool; 2]) {
    let want = adamw_reference(&cfg, decays);
    let mut opt = adamw(cfg);
    let params = run(opt.as_mut());
    assert_close(&values(&params[0]), &want[0], "weight");
    assert_close(&values(&params[1]), &want[1], "bias");
    let names: Vec<String> = opt.state().into_iter().map(|(n, _)| n).collect();
    let expected = [
        "dense.bias/m",
        "dense.bias/v",
        "dense.weight/m",
        "dense.weight/v",
    ];
    assert_eq!(names, expected);
}

fn adamw_cfg(weight_decay_rate: f64, gradient_clip_norm: f64) -> AdamWConfig {
    AdamWConfig {
        weight_decay_rate,
        gradient_clip_norm,
        ..AdamWConfig::default()
    }
}

#[test]
fn adamw_without_decay_or_clipping_matches_reference() {
    check_adamw(adamw_cfg(0.0, 0.0), [false, false]);
}

#[test]
fn adamw_decay_excludes_bias_by_default() {
    check_adamw(adamw_cfg(0.1, 0.0), [true, false]);
}

#[test]
fn adamw_decay_without_exclusion_decays_all() {
    let cfg = AdamWConfig {
        exclude_from_weight_decay: None,
        ..adamw_cfg(0.1, 0.0)
    };
    check_adamw(cfg, [true, true]);
}

#[test]
fn adamw_include_overrides_exclude() {
    let cfg = AdamWConfig {
        include_in_weight_decay: Some(vec!["^dense\\.bias$".into()]),
        exclude_from_weight_decay: Some(vec!["dense".into()]),
        ..adamw_cfg(0.1, 0.0)
    };
    check_adamw(cfg, [false, true]);
}

#[test]
fn adamw_clips_by_global_norm() {
    // Step norms are about 2.35 and 1.76: both are clipped to 1.
    check_adamw(adamw_cfg(0.1, 1.0), [true, false]);
    // A large clip norm changes nothing.
    check_adamw(adamw_cfg(0.0, 100.0), [false, false]);
}

#[test]
fn global_norm_and_clipping() {
    let params = params();
    let mut grads = grad_store(&params, 0);
    let (gw, gb) = GRADS[0];
    let norm2: f64 = gw.iter().chain(&gb).map(|x| x * x).sum();
    let norm = global_norm(&grads, &params).unwrap();
    assert!((norm - norm2.sqrt()).abs() < 1e-6);
    assert_eq!(clip_scale(0.5, 1.0), 1.0);
    assert_eq!(clip_scale(4.0, 1.0), 0.25);
    assert_eq!(clip_scale(4.0, 0.0), 1.0);
    assert!(clip_scale(f64::INFINITY, 1.0).is_nan());
    let before = clip_by_global_norm(&mut grads, &params, 1.0).unwrap();
    assert!((before - norm).abs() < 1e-12);
    assert!((global_norm(&grads, &params).unwrap() - 1.0).abs() < 1e-6);
    let gw: Vec<f32> = grads
        .get(params[0].var.as_tensor())
        .unwrap()
        .to_vec1()
        .unwrap();
    let want: Vec<f64> = GRADS[0].0.iter().map(|x| x / norm).collect();
    assert_close(
        &gw.into_iter().map(f64::from).collect::<Vec<_>>(),
        &want,
        "clipped",
    );
    assert_eq!(global_norm(&GradStore::default(), &params).unwrap(), 0.0);
}

#[test]
fn vars_without_gradient_are_skipped() {
    for mut opt in [sgd(0.9, false), adamw(adamw_cfg(0.1, 1.0))] {
        let params = params();
        let mut grads = grad_store(&params, 0);
        grads.remove(params[1].var.as_tensor());
        opt.apply(&params, &grads, 0.1).unwrap();
        assert_close(&values(&params[1]), &B0, "bias without gradient");
        assert!(opt
            .state()
            .iter()
            .all(|(n, _)| n.starts_with("dense.weight/")));
        assert_eq!(opt.iterations(), 1);
    }
}

/// After one step, copying the state into a fresh optimizer gives an identical second step.
fn check_round_trip(make: impl Fn() -> Box<dyn Optimizer>) {
    let mut first = make();
    let params_a = params();
    first
        .apply(&params_a, &grad_store(&params_a, 0), LRS[0])
        .unwrap();
    let state: HashMap<String, Tensor> = first.state().into_iter().collect();

    let params_b = params();
    for (a, b) in params_a.iter().zip(&params_b) {
        b.var.set(a.var.as_tensor()).unwrap();
    }
    let mut second = make();
    second
        .load_state(&params_b, state, first.iterations())
        .unwrap();
    assert_eq!(second.iterations(), 1);

    first
        .apply(&params_a, &grad_store(&params_a, 1), LRS[1])
        .unwrap();
    second
        .apply(&params_b, &grad_store(&params_b, 1), LRS[1])
        .unwrap();
    for (a, b) in params_a.iter().zip(&params_b) {
        assert_eq!(values(a), values(b), "{}", a.name);
    }
    let state_a: Vec<(String, Vec<f32>)> = first
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.to_vec1().unwrap()))
        .collect();
    let state_b: Vec<(String, Vec<f32>)> = second
        .state()
        .into_iter()
        .map(|(n, t)| (n, t.to_vec1().unwrap()))
        .collect();
    assert_eq!(state_a, state_b);
}

#[test]
fn state_round_trip_gives_identical_next_update() {
    check_round_trip(|| sgd(0.9, true));
    check_round_trip(|| adamw(adamw_cfg(0.1, 1.0)));
}

fn load_error(opt: &mut dyn Optimizer, state: Vec<(&str, Tensor)>) -> String {
    let params = params();
    let state = state.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    match opt.load_state(&params, state, 3) {
        Err(Error::Checkpoint(msg)) => msg,
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn load_state_rejects_foreign_state() {
    let dev = Device::Cpu;
    let zeros = |n: usize| Tensor::zeros(n, candle_core::DType::F32, &dev).unwrap();
    let mut opt = adamw(AdamWConfig::default());
    let msg = load_error(opt.as_mut(), vec![("dense.weight/momentum", zeros(3))]);
    assert!(msg.contains("dense.weight/momentum"), "{msg}");
    let msg = load_error(
        opt.as_mut(),
        vec![("dense.kernel/m", zeros(3)), ("dense.kernel/v", zeros(3))],
    );
    assert!(msg.contains("dense.kernel/m"), "{msg}");
    let msg = load_error(
        opt.as_mut(),
        vec![("dense.weight/m", zeros(2)), ("dense.weight/v", zeros(3))],
    );
    assert!(
        msg.contains("dense.weight/m") && msg.contains("shape"),
        "{msg}"
    );
    let msg = load_error(opt.as_mut(), vec![("dense.weight/m", zeros(3))]);
    assert!(msg.contains("dense.weight/v"), "{msg}");
    assert_eq!(opt.iterations(), 0, "a failed load changes nothing");
    // Plain SGD keeps no state at all.
    let msg = load_error(
        sgd(0.0, false).as_mut(),
        vec![("dense.weight/momentum", zeros(3))],
    );
    assert!(msg.contains("dense.weight/momentum"), "{msg}");
}

#[test]
fn variables_off_the_fused_path_get_the_same_update() {
    // An f64 variable and a strided gradient go through the host copy instead of the
    // in-place CPU update; the result must match the fused path's.
    let fused = run(adamw(adamw_cfg(0.01, 0.0)).as_mut());
    let dev = Device::Cpu;
    let w = Var::from_vec(W0.to_vec(), 3, &dev).unwrap();
    let b = Var::from_vec(B0.map(|x| x as f32).to_vec(), 2, &dev).unwrap();
    let params = vec![
        NamedVar::new("dense.weight", w),
        NamedVar::new("dense.bias", b),
    ];
    let mut opt = adamw(adamw_cfg(0.01, 0.0));
    for (step, lr) in LRS.iter().enumerate() {
        let mut grads = grad_store(&params, step);
        let gw = grads.remove(params[0].var.as_tensor()).unwrap();
        // [g0, g1, g2] as every other element of a 6-element tensor.
        let strided = Tensor::stack(&[&gw, &gw], 1)
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap();
        let strided = strided.squeeze(1).unwrap();
        assert!(!strided.is_contiguous());
        grads.insert(params[0].var.as_tensor(), strided);
        opt.apply(&params, &grads, *lr).unwrap();
    }
    let w64: Vec<f64> = params[0].var.as_tensor().to_vec1().unwrap();
    assert_eq!(params[0].var.dtype(), candle_core::DType::F64);
    assert_close(&w64, &values(&fused[0]), "f64 weight");
    assert_close(&values(&params[1]), &values(&fused[1]), "f32 bias");
}

#[test]
fn large_variables_updated_in_chunks_match_small_ones() {
    // 200 000 elements take the chunked, parallel path; the same values as 50 000-element
    // variables take the one-pass path. Element-wise rules must give identical bits.
    let n = 200_000;
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let grads: Vec<f32> = (0..n)
        .map(|i| ((i * 104_729) % 997) as f32 / 498.0 - 1.0)
        .collect();
    let dev = Device::Cpu;
    let configs: Vec<OptimizerConfig> = vec![
        // No global-norm clip: its norm would be summed in another order.
        adamw_cfg(0.01, 0.0).into(),
        SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        }
        .into(),
    ];
    for config in configs {
        let big = vec![NamedVar::new(
            "big.weight",
            Var::from_vec(values.clone(), n, &dev).unwrap(),
        )];
        let parts: Vec<NamedVar> = values
            .chunks(50_000)
            .enumerate()
            .map(|(i, v)| {
                NamedVar::new(
                    format!("part{i}.weight"),
                    Var::from_vec(v.to_vec(), v.len(), &dev).unwrap(),
                )
            })
            .collect();
        let (mut a, mut b) = (
            build_optimizer(&config).unwrap(),
            build_optimizer(&config).unwrap(),
        );
        for lr in [0.1, 0.05] {
            let mut big_grads = GradStore::default();
            big_grads.insert(
                big[0].var.as_tensor(),
                Tensor::new(grads.as_slice(), &dev).unwrap(),
            );
            a.apply(&big, &big_grads, lr).unwrap();
            let mut part_grads = GradStore::default();
            for (part, g) in parts.iter().zip(grads.chunks(50_000)) {
                part_grads.insert(part.var.as_tensor(), Tensor::new(g, &dev).unwrap());
            }
            b.apply(&parts, &part_grads, lr).unwrap();
        }
        let chunked: Vec<f32> = big[0].var.as_tensor().to_vec1().unwrap();
        let whole: Vec<f32> = parts
            .iter()
            .flat_map(|p| p.var.as_tensor().to_vec1::<f32>().unwrap())
            .collect();
        assert!(
            chunked == whole,
            "{:?}: chunked update differs",
            config.kind
        );
    }
}
