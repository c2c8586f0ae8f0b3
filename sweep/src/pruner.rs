//! Pruning: after each evaluation of a trial, whether to stop it early, from its intermediate
//! values and those of the sweep's finished trials. The rules are Optuna's:
//!
//! - `median` (Optuna's `MedianPruner`): once `n_startup_trials` trials are complete, a trial
//!   is pruned at a step past `n_warmup_steps` (checked every `interval_steps`) when its best
//!   value so far is worse than the median of the complete trials' values at that same step.
//! - `asha` (Optuna's `SuccessiveHalvingPruner`): rungs at steps
//!   `min_resource * reduction_factor^(min_early_stopping_rate + k)`; at its first evaluation
//!   at or past a rung, a trial goes on only if its value is in the best
//!   `1 / reduction_factor` of the values every finished trial had at that rung (the best
//!   one while fewer than `reduction_factor` trials reached it).
//!
//! A NaN value is pruned at once. Only finished trials (in the ledger) are compared against,
//! so a sweep with `parallel: 1` prunes the same trials at the same steps on every run.

use serde::{Deserialize, Serialize};

use crate::spec::Goal;

/// A trial's intermediate values: `(step, metric value)` of each evaluation, in step order.
pub type Curve = [(u64, f64)];

/// The `pruner:` section of a sweep file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrunerSpec {
    /// Every trial runs to its end.
    #[default]
    None,
    /// Optuna's `MedianPruner`.
    Median {
        /// Complete trials needed before any pruning.
        #[serde(default = "default_startup_trials")]
        n_startup_trials: usize,
        /// Steps before which a trial is never pruned.
        #[serde(default)]
        n_warmup_steps: u64,
        /// Pruning is checked at most once per this many steps (after the warm-up).
        #[serde(default = "one")]
        interval_steps: u64,
    },
    /// Optuna's `SuccessiveHalvingPruner` (asynchronous successive halving).
    Asha {
        /// The first rung's step (default: the step of the trial's first evaluation).
        #[serde(default)]
        min_resource: Option<u64>,
        /// Each rung keeps the best `1 / reduction_factor` (>= 2).
        #[serde(default = "default_reduction_factor")]
        reduction_factor: u64,
        /// Skips the first rungs: the first is at `min_resource * reduction_factor^rate`.
        #[serde(default)]
        min_early_stopping_rate: u32,
    },
}

fn default_startup_trials() -> usize {
    5
}

fn one() -> u64 {
    1
}

fn default_reduction_factor() -> u64 {
    3
}

impl PrunerSpec {
    /// Refuses settings that cannot work, with the reason.
    pub fn check(&self) -> Result<(), String> {
        match self {
            PrunerSpec::Median { interval_steps, .. } if *interval_steps == 0 => {
                Err("`interval_steps` must be >= 1".to_string())
            }
            PrunerSpec::Asha {
                reduction_factor, ..
            } if *reduction_factor < 2 => Err(format!(
                "`reduction_factor` = {reduction_factor} must be >= 2"
            )),
            PrunerSpec::Asha {
                min_resource: Some(0),
                ..
            } => Err("`min_resource` must be >= 1 step".to_string()),
            _ => Ok(()),
        }
    }

    /// Why the trial whose evaluations so far are `own` (its latest last) should stop, or
    /// `None` to go on. `complete` are the curves of the sweep's complete trials, `finished`
    /// those of every finished trial (complete or pruned).
    pub fn should_prune(
        &self,
        goal: Goal,
        own: &Curve,
        complete: &[&Curve],
        finished: &[&Curve],
    ) -> Option<String> {
        let &(step, value) = own.last()?;
        if value.is_nan() {
            return Some(format!("the metric is NaN at step {step}"));
        }
        match self {
            PrunerSpec::None => None,
            PrunerSpec::Median {
                n_startup_trials,
                n_warmup_steps,
                interval_steps,
            } => {
                if complete.is_empty()
                    || complete.len() < *n_startup_trials
                    || step < *n_warmup_steps
                {
                    return None;
                }
                let previous = own.len().checked_sub(2).map(|i| own[i].0);
                let lower_check =
                    (step - n_warmup_steps) / interval_steps * interval_steps + n_warmup_steps;
                if previous.is_some_and(|p| p >= lower_check) {
                    return None;
                }
                let at_step: Vec<f64> = (complete.iter())
                    .filter_map(|curve| value_at(curve, step))
                    .filter(|v| !v.is_nan())
                    .collect();
                let median = median(at_step)?;
                let best = (own.iter().map(|&(_, v)| v))
                    .filter(|v| !v.is_nan())
                    .reduce(|a, b| if goal.better(b, a) { b } else { a })?;
                goal.better(median, best).then(|| {
                    format!(
                        "its best value so far, {best}, is worse than the median {median} of \
                         the complete trials at step {step} (pruner: median)"
                    )
                })
            }
            PrunerSpec::Asha {
                min_resource,
                reduction_factor,
                min_early_stopping_rate,
            } => {
                let first_rung = min_resource.unwrap_or(own[0].0);
                let previous = own.len().checked_sub(2).map(|i| own[i].0);
                for rung in 0u32.. {
                    let resource = reduction_factor
                        .checked_pow(min_early_stopping_rate + rung)
                        .and_then(|f| f.checked_mul(first_rung))?;
                    if step < resource {
                        return None;
                    }
                    if previous.is_some_and(|p| p >= resource) {
                        continue; // this rung was decided at an earlier evaluation
                    }
                    let mut competing: Vec<f64> = (finished.iter())
                        .filter_map(|curve| curve.iter().find(|(s, _)| *s >= resource))
                        .map(|&(_, v)| goal.loss(v))
                        .filter(|v| !v.is_nan())
                        .collect();
                    competing.push(goal.loss(value));
                    competing.sort_by(f64::total_cmp);
                    let kept = (competing.len() as u64 / reduction_factor).max(1) as usize;
                    if goal.loss(value) > competing[kept - 1] {
                        return Some(format!(
                            "its value {value} at step {step} is not among the best {kept} of \
                             the {} trials that reached rung {rung} (step {resource}; pruner: \
                             asha)",
                            competing.len()
                        ));
                    }
                }
                None
            }
        }
    }
}

/// The value a curve has at exactly `step`.
fn value_at(curve: &Curve, step: u64) -> Option<f64> {
    curve.iter().find(|(s, _)| *s == step).map(|&(_, v)| v)
}

/// The median with linear interpolation between the middle values (numpy's default).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = (values.len() - 1) as f64 / 2.0;
    let (low, high) = (
        values[middle.floor() as usize],
        values[middle.ceil() as usize],
    );
    Some(low + (high - low) * (middle - middle.floor()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn median_pruner(n_startup_trials: usize) -> PrunerSpec {
        PrunerSpec::Median {
            n_startup_trials,
            n_warmup_steps: 0,
            interval_steps: 1,
        }
    }

    const A: &Curve = &[(10, 0.5), (20, 0.6)];
    const B: &Curve = &[(10, 0.7), (20, 0.8)];
    const C: &Curve = &[(10, 0.9), (20, 0.95)];

    #[test]
    fn median_prunes_a_trial_worse_than_the_median_at_its_step() {
        let pruner = median_pruner(3);
        let complete = [A, B, C];
        // The median at step 10 is 0.7.
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.65)], &complete, &complete)
            .is_some());
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.7)], &complete, &complete)
            .is_none());
        // Its best so far counts, not its latest.
        assert!(pruner
            .should_prune(
                Goal::Maximize,
                &[(10, 0.9), (20, 0.1)],
                &complete,
                &complete
            )
            .is_none());
        // Minimizing, the same values are judged the other way round.
        assert!(pruner
            .should_prune(Goal::Minimize, &[(10, 0.65)], &complete, &complete)
            .is_none());
        // Too few complete trials, or no complete trial evaluated at that step.
        assert!(median_pruner(4)
            .should_prune(Goal::Maximize, &[(10, 0.1)], &complete, &complete)
            .is_none());
        assert!(pruner
            .should_prune(Goal::Maximize, &[(15, 0.1)], &complete, &complete)
            .is_none());
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, f64::NAN)], &complete, &complete)
            .is_some());
    }

    #[test]
    fn median_warm_up_and_interval_skip_steps() {
        let pruner = PrunerSpec::Median {
            n_startup_trials: 1,
            n_warmup_steps: 15,
            interval_steps: 10,
        };
        let complete = [B];
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.1)], &complete, &complete)
            .is_none());
        assert!(pruner
            .should_prune(
                Goal::Maximize,
                &[(10, 0.1), (20, 0.1)],
                &complete,
                &complete
            )
            .is_some());
    }

    #[test]
    fn asha_keeps_the_top_third_of_each_rung() {
        let pruner = PrunerSpec::Asha {
            min_resource: Some(10),
            reduction_factor: 3,
            min_early_stopping_rate: 0,
        };
        let finished = [A, B, C, &[(10, 0.8)][..], &[(10, 0.85)][..]];
        // Six trials reach step 10 (with this one): the best two go on (0.9 and 0.85).
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.86)], &[], &finished)
            .is_none());
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.84)], &[], &finished)
            .is_some());
        // The first trial at a rung is kept; fewer than three keep only the best.
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.1)], &[], &[])
            .is_none());
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.6)], &[], &[A])
            .is_none());
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.4)], &[], &[A])
            .is_some());
        // Between rungs nothing is decided; the next rung is at step 30.
        assert!(pruner
            .should_prune(Goal::Maximize, &[(10, 0.95), (20, 0.0)], &[], &finished)
            .is_none());
        // At step 30 (rung 1) it meets the one other trial that got there.
        let late = [&[(10, 0.9), (30, 0.9)][..]];
        assert!(pruner
            .should_prune(
                Goal::Maximize,
                &[(10, 0.95), (20, 0.5), (30, 0.92)],
                &[],
                &late
            )
            .is_none());
        assert!(pruner
            .should_prune(
                Goal::Maximize,
                &[(10, 0.95), (20, 0.5), (30, 0.5)],
                &[],
                &late
            )
            .is_some());
    }

    #[test]
    fn median_interpolates_between_middle_values() {
        assert_eq!(median(vec![3.0, 1.0]), Some(2.0));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![]), None);
    }
}
