//! The moving average of the weights: Model Garden's decay, averages from zero, swapping,
//! exports and checkpointed state.

use super::*;
use crate::config::optimization::{EmaConfig, OptimizationConfig};
use crate::optimization::ema::MovingAverage;

fn ema_sgd(config: EmaConfig) -> Box<dyn Optimizer> {
    Box::new(MovingAverage::new(sgd(0.0, false), config))
}

#[test]
fn decay_follows_model_garden() {
    let dynamic = MovingAverage::new(sgd(0.0, false), EmaConfig::default());
    assert_eq!(dynamic.decay(1), 2.0 / 11.0);
    assert_eq!(dynamic.decay(10), 11.0 / 20.0);
    assert_eq!(dynamic.decay(10_000), 0.99);
    let delayed = EmaConfig {
        start_step: 5,
        dynamic_decay: false,
        ..EmaConfig::default()
    };
    let delayed = MovingAverage::new(sgd(0.0, false), delayed);
    assert_eq!(delayed.decay(4), 0.0);
    assert_eq!(delayed.decay(5), 0.99);
}

#[test]
fn averages_start_at_zero_and_swap_in_and_out() {
    let mut opt = ema_sgd(EmaConfig::default());
    let params = run(opt.as_mut());
    let raw = [values(&params[0]), values(&params[1])];
    // Plain SGD weights after each step, then the average of them from zero.
    let after_one = reference(|_, w, g, lr, t| {
        if t == 1 {
            for i in 0..w.len() {
                w[i] -= lr * g[i];
            }
        }
    });
    let (d1, d2) = (2.0 / 11.0, 3.0 / 12.0);
    let want: Vec<Vec<f64>> = (0..2)
        .map(|k| {
            (0..raw[k].len())
                .map(|i| {
                    let first = (1.0 - d1) * after_one[k][i];
                    d2 * first + (1.0 - d2) * raw[k][i]
                })
                .collect()
        })
        .collect();
    let averages: HashMap<String, Vec<f64>> = opt
        .average_weights()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.to_vec1::<f32>()
                    .unwrap()
                    .into_iter()
                    .map(f64::from)
                    .collect(),
            )
        })
        .collect();
    assert_close(&averages["dense.weight"], &want[0], "weight average");
    assert_close(&averages["dense.bias"], &want[1], "bias average");

    assert!(opt.swap_average_weights(&params).unwrap());
    assert_close(&values(&params[0]), &want[0], "swapped in");
    assert!(opt.swap_average_weights(&params).unwrap());
    assert_eq!(values(&params[0]), raw[0], "swapped back exactly");
    assert!(!sgd(0.0, false).swap_average_weights(&params).unwrap());
}

#[test]
fn averages_are_checkpointed_state() {
    let names: Vec<String> = {
        let mut opt = ema_sgd(EmaConfig::default());
        run(opt.as_mut());
        opt.state().into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(names, ["dense.bias/average", "dense.weight/average"]);
    check_round_trip(|| ema_sgd(EmaConfig::default()));
    let with_adam = OptimizationConfig {
        optimizer: OptimizerConfig::from(AdamWConfig::default()),
        ema: Some(EmaConfig::default()),
        ..OptimizationConfig::default()
    };
    check_round_trip(|| build_optimizer_with_ema(&with_adam).unwrap());
}
