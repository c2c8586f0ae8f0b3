//! The search space: each swept config key with its domain (a list of values, or a uniform,
//! log-uniform or integer range with an optional step), validated from the sweep file.
//!
//! Samplers work in an *internal* coordinate per parameter: the value itself for linear
//! ranges, its natural log for log-uniform ones, and the index for a list of values.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, SweepError};

/// One trial's values, by dotted config key.
pub type Assignment = BTreeMap<String, Value>;

/// How a parameter is drawn, as the sweep file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Uniform between `min` and `max`.
    Uniform,
    /// Uniform in log space between `min` and `max` (both > 0).
    LogUniform,
    /// A uniform integer between `min` and `max`, inclusive.
    IntUniform,
}

/// A parameter as the sweep file gives it: `values: [...]`, or `distribution`, `min`, `max`
/// and an optional step `q`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    /// The values to choose among (grid points for `method: grid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// The range's distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// The range's lower bound (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The range's upper bound (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A step: values are `min + k * q`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<f64>,
}

/// Where a parameter's values lie.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Real values in `[low, high]`, uniform or log-uniform, optionally on a `step` grid
    /// anchored at `low`.
    Float {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Drawn uniformly in log space.
        log: bool,
        /// Grid step, if any.
        step: Option<f64>,
    },
    /// Integers `low, low + step, ..., high`.
    Int {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Grid step (1 unless `q` is given).
        step: i64,
    },
    /// One of a list of config values.
    Choice(Vec<Value>),
}

/// A swept config key and its domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The dotted config key, e.g. `task.model.dropout_rate`.
    pub key: String,
    /// Its domain.
    pub domain: Domain,
}

/// The parameters of a sweep, in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    /// The parameters.
    pub parameters: Vec<Parameter>,
}

/// A grid with more points than this is refused (a typo in `q`, most likely).
const MAX_GRID_POINTS: usize = 100_000;

impl Space {
    /// Validates the `parameters` section of the sweep file `file`.
    pub fn from_specs(specs: &BTreeMap<String, ParameterSpec>, file: &str) -> Result<Space> {
        if specs.is_empty() {
            return Err(SweepError::Spec(format!(
                "{file}: `parameters` is empty; give at least one config key to sweep, e.g. \
                 `task.model.dropout_rate: {{distribution: uniform, min: 0.0, max: 0.5}}`"
            )));
        }
        let parameters = specs
            .iter()
            .map(|(key, spec)| {
                let domain = Domain::from_spec(spec).map_err(|why| {
                    SweepError::Spec(format!("{file}: `parameters.{key}`: {why}"))
                })?;
                Ok(Parameter {
                    key: key.clone(),
                    domain,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Space { parameters })
    }

    /// Every combination of the parameters' grid points, the last key varying fastest.
    pub fn grid(&self) -> Result<Vec<Assignment>> {
        let mut points = vec![Assignment::new()];
        for parameter in &self.parameters {
            let values = parameter.domain.grid_points().ok_or_else(|| {
                SweepError::Spec(format!(
                    "`method: grid` needs a finite set of values, but `parameters.{}` is a \
                     continuous range; give it `values: [...]` or a step `q`",
                    parameter.key
                ))
            })?;
            points = points
                .into_iter()
                .flat_map(|point| {
                    values.iter().map(move |value| {
                        let mut next = point.clone();
                        next.insert(parameter.key.clone(), value.clone());
                        next
                    })
                })
                .collect();
            if points.len() > MAX_GRID_POINTS {
                return Err(SweepError::Spec(format!(
                    "the grid has more than {MAX_GRID_POINTS} points; use fewer values or a \
                     coarser `q`"
                )));
            }
        }
        Ok(points)
    }

    /// A uniformly drawn assignment.
    pub fn sample_uniform(&self, rng: &mut impl Rng) -> Assignment {
        self.parameters
            .iter()
            .map(|p| (p.key.clone(), p.domain.sample_uniform(rng)))
            .collect()
    }
}

impl Domain {
    fn from_spec(spec: &ParameterSpec) -> std::result::Result<Domain, String> {
        if let Some(values) = &spec.values {
            if spec.distribution.is_some() || spec.min.is_some() || spec.max.is_some() {
                return Err(
                    "give either `values` or a `distribution` with `min` and `max`, \
                            not both"
                        .to_string(),
                );
            }
            if values.is_empty() {
                return Err("`values` is empty; list at least one value".to_string());
            }
            return Ok(Domain::Choice(values.clone()));
        }
        let Some(distribution) = spec.distribution else {
            return Err(
                "give `values: [...]`, or `distribution: uniform | log_uniform | \
                        int_uniform` with `min` and `max`"
                    .to_string(),
            );
        };
        let (Some(low), Some(high)) = (spec.min, spec.max) else {
            return Err(format!(
                "`distribution: {}` needs both `min` and `max`",
                distribution_name(distribution)
            ));
        };
        if !low.is_finite() || !high.is_finite() || low > high {
            return Err(format!(
                "the range is empty or not finite: min = {low}, max = {high}; give min <= max"
            ));
        }
        if let Some(q) = spec.q {
            if !(q.is_finite() && q > 0.0) {
                return Err(format!("`q` = {q} must be a positive step"));
            }
            let steps = (high - low) / q;
            if (steps - steps.round()).abs() > 1e-6 * steps.max(1.0) {
                return Err(format!(
                    "max - min = {} is not a multiple of q = {q}; pick bounds on the step's \
                     grid",
                    high - low
                ));
            }
        }
        match distribution {
            Distribution::Uniform => Ok(Domain::Float {
                low,
                high,
                log: false,
                step: spec.q,
            }),
            Distribution::LogUniform => {
                if low <= 0.0 {
                    return Err(format!(
                        "`distribution: log_uniform` needs min > 0, got min = {low}; use \
                         `uniform` for ranges that include 0"
                    ));
                }
                if spec.q.is_some() {
                    return Err("`q` cannot be combined with `log_uniform`".to_string());
                }
                Ok(Domain::Float {
                    low,
                    high,
                    log: true,
                    step: None,
                })
            }
            Distribution::IntUniform => {
                let integral = |x: f64| x.fract() == 0.0 && x.abs() < 2f64.powi(53);
                let step = spec.q.unwrap_or(1.0);
                if !integral(low) || !integral(high) || !integral(step) {
                    return Err(format!(
                        "`distribution: int_uniform` needs integer min, max and q, got min = \
                         {low}, max = {high}, q = {step}"
                    ));
                }
                Ok(Domain::Int {
                    low: low as i64,
                    high: high as i64,
                    step: step as i64,
                })
            }
        }
    }

    /// The domain's finite set of values, if it has one.
    pub fn grid_points(&self) -> Option<Vec<Value>> {
        match self {
            Domain::Choice(values) => Some(values.clone()),
            Domain::Int { low, high, step } => Some(
                (0..=(high - low) / step)
                    .map(|k| Value::from(low + k * step))
                    .collect(),
            ),
            Domain::Float {
                low,
                high,
                step: Some(step),
                ..
            } => {
                let count = ((high - low) / step).round() as usize;
                (count < MAX_GRID_POINTS).then(|| {
                    (0..=count)
                        .map(|k| float_value(low + k as f64 * step, *step))
                        .collect()
                })
            }
            Domain::Float { step: None, .. } => None,
        }
    }

    /// A uniformly drawn value.
    pub fn sample_uniform(&self, rng: &mut impl Rng) -> Value {
        match self {
            Domain::Choice(values) => values[rng.random_range(0..values.len())].clone(),
            Domain::Int { low, high, step } => {
                Value::from(low + rng.random_range(0..=(high - low) / step) * step)
            }
            Domain::Float { .. } => {
                let (low, high) = self.internal_bounds();
                self.from_internal(if low < high {
                    rng.random_range(low..=high)
                } else {
                    low
                })
            }
        }
    }

    /// The bounds of the internal coordinate of a numeric domain (log bounds for
    /// log-uniform; half a step beyond the ends for stepped ones, so every grid point has an
    /// equal share); `(0, n)` for a choice among `n`.
    pub fn internal_bounds(&self) -> (f64, f64) {
        match self {
            Domain::Float {
                low,
                high,
                log: true,
                ..
            } => (low.ln(), high.ln()),
            Domain::Float {
                low,
                high,
                step: Some(step),
                ..
            } => (low - step / 2.0, high + step / 2.0),
            Domain::Float { low, high, .. } => (*low, *high),
            Domain::Int { low, high, step } => (
                *low as f64 - *step as f64 / 2.0,
                *high as f64 + *step as f64 / 2.0,
            ),
            Domain::Choice(values) => (0.0, values.len() as f64),
        }
    }

    /// The config value at internal coordinate `x` (snapped to the step grid and bounds; for
    /// a choice, `x` is the index).
    pub fn from_internal(&self, x: f64) -> Value {
        match self {
            Domain::Choice(values) => values[(x as usize).min(values.len() - 1)].clone(),
            Domain::Int { low, high, step } => {
                let k = ((x - *low as f64) / *step as f64).round().max(0.0) as i64;
                Value::from((low + k * step).min(*high))
            }
            Domain::Float {
                low,
                high,
                log: true,
                ..
            } => Value::from(x.exp().clamp(*low, *high)),
            Domain::Float {
                low,
                high,
                step: Some(step),
                ..
            } => {
                let k = ((x - low) / step).round().max(0.0);
                float_value((low + k * step).min(*high), *step)
            }
            Domain::Float { low, high, .. } => Value::from(x.clamp(*low, *high)),
        }
    }

    /// The internal coordinate of a recorded value (`None` if the value is not in the
    /// domain, e.g. a ledger written for another space).
    pub fn to_internal(&self, value: &Value) -> Option<f64> {
        match self {
            Domain::Choice(values) => values.iter().position(|v| v == value).map(|i| i as f64),
            Domain::Float { log: true, .. } => value.as_f64().filter(|v| *v > 0.0).map(f64::ln),
            Domain::Float { .. } | Domain::Int { .. } => value.as_f64(),
        }
    }
}

/// `x` rounded to the decimals `step` has (plus six), so a grid value reads `0.3`, not
/// `0.30000000000000004`.
fn float_value(x: f64, step: f64) -> Value {
    let decimals = (6.0 - step.log10().floor()).clamp(0.0, 15.0) as i32;
    let scale = 10f64.powi(decimals);
    Value::from((x * scale).round() / scale)
}

fn distribution_name(distribution: Distribution) -> &'static str {
    match distribution {
        Distribution::Uniform => "uniform",
        Distribution::LogUniform => "log_uniform",
        Distribution::IntUniform => "int_uniform",
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn space(yaml: &str) -> Result<Space> {
        let specs: BTreeMap<String, ParameterSpec> = serde_yaml::from_str(yaml).unwrap();
        Space::from_specs(&specs, "sweep.yaml")
    }

    fn error(yaml: &str) -> String {
        space(yaml).unwrap_err().to_string()
    }

    #[test]
    fn bad_ranges_are_refused_naming_the_key() {
        let message = error("a.b: {distribution: log_uniform, min: 0.0, max: 1.0}");
        assert!(message.contains("`parameters.a.b`: `distribution: log_uniform` needs min > 0"));
        assert!(error("x: {distribution: uniform, min: 2, max: 1}").contains("range is empty"));
        assert!(error("x: {values: []}").contains("`values` is empty"));
        assert!(error("x: {distribution: uniform, min: 0}").contains("needs both `min` and `max`"));
        assert!(error("x: {distribution: int_uniform, min: 0.5, max: 3}").contains("integer"));
        assert!(error("x: {distribution: uniform, min: 0, max: 1, q: 0.3}").contains("multiple"));
        assert!(error("x: {min: 0, max: 1}").contains("give `values: [...]`"));
        assert!(error("{}").contains("`parameters` is empty"));
    }

    #[test]
    fn the_grid_enumerates_values_integers_and_steps() {
        let space = space(
            "a: {values: [relu, gelu]}\nb: {distribution: int_uniform, min: 1, max: 5, q: 2}\n\
             c: {distribution: uniform, min: 0.0, max: 0.3, q: 0.1}",
        )
        .unwrap();
        let grid = space.grid().unwrap();
        assert_eq!(grid.len(), 2 * 3 * 4);
        let last = &grid[grid.len() - 1];
        assert_eq!(last["a"], "gelu");
        assert_eq!(last["b"], 5);
        assert_eq!(last["c"], 0.3);
        assert_eq!(grid[1]["c"], 0.1);
        let continuous = Space::from_specs(
            &serde_yaml::from_str("lr: {distribution: log_uniform, min: 1e-4, max: 1e-1}").unwrap(),
            "f",
        )
        .unwrap();
        assert!(continuous
            .grid()
            .unwrap_err()
            .to_string()
            .contains("continuous range"));
    }

    #[test]
    fn uniform_draws_stay_in_their_domains() {
        let space = space(
            "lr: {distribution: log_uniform, min: 1e-4, max: 1e-1}\n\
             n: {distribution: int_uniform, min: 2, max: 8, q: 2}\n\
             p: {distribution: uniform, min: 0.0, max: 0.5, q: 0.05}",
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        let mut seen_ends = (false, false);
        for _ in 0..500 {
            let point = space.sample_uniform(&mut rng);
            let lr = point["lr"].as_f64().unwrap();
            assert!((1e-4..=1e-1).contains(&lr));
            let n = point["n"].as_i64().unwrap();
            assert!([2, 4, 6, 8].contains(&n), "{n}");
            let p = point["p"].as_f64().unwrap();
            assert!(((p / 0.05) - (p / 0.05).round()).abs() < 1e-9 && (0.0..=0.5).contains(&p));
            seen_ends.0 |= n == 2;
            seen_ends.1 |= n == 8;
        }
        assert_eq!(seen_ends, (true, true));
    }

    #[test]
    fn internal_coordinates_round_trip() {
        let log = Domain::Float {
            low: 1e-4,
            high: 1.0,
            log: true,
            step: None,
        };
        let x = log.to_internal(&Value::from(0.01)).unwrap();
        assert!((log.from_internal(x).as_f64().unwrap() - 0.01).abs() < 1e-12);
        let choice = Domain::Choice(vec![Value::from("a"), Value::from(vec![1, 2])]);
        assert_eq!(choice.to_internal(&Value::from(vec![1, 2])), Some(1.0));
        assert_eq!(choice.from_internal(1.0), Value::from(vec![1, 2]));
        assert_eq!(choice.to_internal(&Value::from("b")), None);
    }
}
