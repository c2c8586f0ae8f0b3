//! The tree-structured Parzen estimator, with Optuna's default (univariate) behaviour:
//!
//! - the first `n_startup_trials` (10) trials are drawn uniformly;
//! - then the finished trials are split into a good group, the best `ceil(0.1 n)` (at most
//!   25), and the rest; complete trials rank by value, pruned ones after them, by how far
//!   they got and then by their last value; failed trials are left out;
//! - for each parameter, `l(x)` and `g(x)` are Parzen estimators of the good and the other
//!   group's values, `n_ei_candidates` (24) values are drawn from `l`, and the one with the
//!   largest `l(x) / g(x)` is suggested.
//!
//! Written here rather than taken from the `tpe` crate, whose optimizer handles one
//! parameter on its own with no startup phase, no pruned trials and no choice among
//! arbitrary values, and which builds on an older `rand`.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::parzen::{ChoiceParzen, NumericParzen};
use crate::ledger::{TrialRecord, TrialState};
use crate::space::{Assignment, Domain, Parameter, Space};
use crate::spec::Goal;

/// TPE's settings (`tpe:` in the sweep file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpeSettings {
    /// Trials drawn uniformly before TPE takes over.
    #[serde(default = "default_startup_trials")]
    pub n_startup_trials: usize,
    /// Candidates drawn from the good group's density per suggestion.
    #[serde(default = "default_candidates")]
    pub n_ei_candidates: usize,
    /// The prior kernel's weight.
    #[serde(default = "default_prior_weight")]
    pub prior_weight: f64,
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            n_startup_trials: default_startup_trials(),
            n_ei_candidates: default_candidates(),
            prior_weight: default_prior_weight(),
        }
    }
}

fn default_startup_trials() -> usize {
    10
}

fn default_candidates() -> usize {
    24
}

fn default_prior_weight() -> f64 {
    1.0
}

/// The size of the good group among `n` finished trials.
pub fn good_group_size(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// The next trial's parameters.
pub fn suggest(
    settings: &TpeSettings,
    space: &Space,
    goal: Goal,
    trials: &BTreeMap<u64, TrialRecord>,
    rng: &mut impl Rng,
) -> Assignment {
    let complete = trials
        .values()
        .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
        .count();
    if complete < settings.n_startup_trials.max(1) {
        return space.sample_uniform(rng);
    }
    let (good, rest) = split(trials, goal);
    space
        .parameters
        .iter()
        .map(|parameter| {
            let value = suggest_one(settings, parameter, &good, &rest, rng);
            (parameter.key.clone(), value)
        })
        .collect()
}

/// The finished trials split into the good group and the rest, each in trial order.
fn split(
    trials: &BTreeMap<u64, TrialRecord>,
    goal: Goal,
) -> (Vec<&TrialRecord>, Vec<&TrialRecord>) {
    let mut ranked: Vec<(&TrialRecord, (u8, i64, f64))> = trials
        .values()
        .filter_map(|t| {
            let rank = match t.state {
                TrialState::Complete => (0, 0, goal.loss(t.value?)),
                TrialState::Pruned => {
                    let &(step, value) = t.intermediate.last()?;
                    (1, -(step as i64), goal.loss(value))
                }
                TrialState::Running | TrialState::Failed => return None,
            };
            Some((t, rank))
        })
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| {
        (ra.0, ra.1)
            .cmp(&(rb.0, rb.1))
            .then(nan_last(ra.2).total_cmp(&nan_last(rb.2)))
            .then(a.number.cmp(&b.number))
    });
    let n_good = good_group_size(ranked.len());
    let mut good: Vec<&TrialRecord> = ranked[..n_good].iter().map(|(t, _)| *t).collect();
    let mut rest: Vec<&TrialRecord> = ranked[n_good..].iter().map(|(t, _)| *t).collect();
    good.sort_by_key(|t| t.number);
    rest.sort_by_key(|t| t.number);
    (good, rest)
}

fn nan_last(loss: f64) -> f64 {
    if loss.is_nan() {
        f64::INFINITY
    } else {
        loss
    }
}

fn suggest_one(
    settings: &TpeSettings,
    parameter: &Parameter,
    good: &[&TrialRecord],
    rest: &[&TrialRecord],
    rng: &mut impl Rng,
) -> serde_json::Value {
    let domain = &parameter.domain;
    let observed = |group: &[&TrialRecord]| -> Vec<f64> {
        group
            .iter()
            .filter_map(|t| domain.to_internal(t.params.get(&parameter.key)?))
            .collect()
    };
    let (good, rest) = (observed(good), observed(rest));
    let candidates = settings.n_ei_candidates.max(1);
    match domain {
        Domain::Choice(values) => {
            let indices = |xs: &[f64]| xs.iter().map(|&x| x as usize).collect::<Vec<_>>();
            let l = ChoiceParzen::new(&indices(&good), values.len(), settings.prior_weight);
            let g = ChoiceParzen::new(&indices(&rest), values.len(), settings.prior_weight);
            let best = (0..candidates)
                .map(|_| l.sample(rng))
                .map(|c| (c, l.log_probability(c) - g.log_probability(c)))
                .reduce(|a, b| if b.1 > a.1 { b } else { a })
                .map_or(0, |(c, _)| c);
            domain.from_internal(best as f64)
        }
        Domain::Float { .. } | Domain::Int { .. } => {
            let (low, high) = domain.internal_bounds();
            let l = NumericParzen::new(&good, low, high, settings.prior_weight);
            let g = NumericParzen::new(&rest, low, high, settings.prior_weight);
            let best = (0..candidates)
                .map(|_| l.sample(rng))
                .map(|x| (x, l.log_density(x) - g.log_density(x)))
                .reduce(|a, b| if b.1 > a.1 { b } else { a })
                .map_or(low, |(x, _)| x);
            domain.from_internal(best)
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::space::ParameterSpec;

    fn space() -> Space {
        let specs: BTreeMap<String, ParameterSpec> = serde_yaml::from_str(
            "x: {distribution: uniform, min: -5.0, max: 5.0}\n\
             y: {distribution: uniform, min: -5.0, max: 5.0}\n\
             z: {distribution: log_uniform, min: 0.001, max: 10.0}",
        )
        .unwrap();
        Space::from_specs(&specs, "s").unwrap()
    }

    /// A bowl with its minimum at x = 2, y = -1, z = 0.1.
    fn objective(params: &Assignment) -> f64 {
        let value = |key: &str| params[key].as_f64().unwrap();
        (value("x") - 2.0).powi(2) + (value("y") + 1.0).powi(2) + (value("z") / 0.1).ln().powi(2)
    }

    fn run(
        sampler: impl Fn(&BTreeMap<u64, TrialRecord>, &mut StdRng) -> Assignment,
        seed: u64,
    ) -> f64 {
        let mut trials = BTreeMap::new();
        let mut best = f64::INFINITY;
        for number in 0..60 {
            let mut rng = StdRng::seed_from_u64(seed * 1000 + number);
            let params = sampler(&trials, &mut rng);
            let value = objective(&params);
            best = best.min(value);
            trials.insert(
                number,
                TrialRecord {
                    number,
                    params,
                    state: TrialState::Complete,
                    value: Some(value),
                    intermediate: Vec::new(),
                    reason: None,
                    starts: 1,
                },
            );
        }
        best
    }

    #[test]
    fn the_good_group_is_a_tenth_capped_at_twenty_five() {
        assert_eq!(good_group_size(1), 1);
        assert_eq!(good_group_size(10), 1);
        assert_eq!(good_group_size(11), 2);
        assert_eq!(good_group_size(1000), 25);
    }

    #[test]
    fn tpe_beats_random_search_on_a_bowl() {
        let space = space();
        let settings = TpeSettings::default();
        let (mut tpe_total, mut random_total) = (0.0, 0.0);
        for seed in 0..5 {
            tpe_total += run(
                |t, rng| suggest(&settings, &space, Goal::Minimize, t, rng),
                seed,
            );
            random_total += run(|_, rng| space.sample_uniform(rng), seed);
        }
        assert!(
            tpe_total < random_total / 2.0,
            "TPE's mean best {} vs random's {}",
            tpe_total / 5.0,
            random_total / 5.0
        );
    }

    #[test]
    fn pruned_trials_rank_after_complete_ones_and_failed_are_left_out() {
        let record = |number, state, value: Option<f64>, last: (u64, f64)| TrialRecord {
            number,
            params: Assignment::new(),
            state,
            value,
            intermediate: vec![last],
            reason: None,
            starts: 1,
        };
        let trials: BTreeMap<u64, TrialRecord> = [
            record(0, TrialState::Pruned, Some(0.99), (10, 0.99)),
            record(1, TrialState::Complete, Some(0.5), (30, 0.5)),
            record(2, TrialState::Failed, None, (0, 0.0)),
            record(3, TrialState::Pruned, Some(0.6), (20, 0.6)),
        ]
        .into_iter()
        .map(|t| (t.number, t))
        .collect();
        let (good, rest) = split(&trials, Goal::Maximize);
        assert_eq!(good.iter().map(|t| t.number).collect::<Vec<_>>(), [1]);
        assert_eq!(rest.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 3]);
    }
}
