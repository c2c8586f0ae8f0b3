//! Streaming metrics. Values stay on the device as tensors during a loop and are read back once,
//! when `result` is called at the loop's end.

use candle_core::Tensor;

use crate::error::Result;
use crate::task::StepOutputs;

/// A streaming metric (Keras metric semantics: update per step, result per loop, reset).
pub trait Metric: Send {
    /// The name it is logged under (e.g. `masked_lm_accuracy`).
    fn name(&self) -> &str;
    /// Folds one step's outputs in.
    fn update(&mut self, outputs: &StepOutputs) -> Result<()>;
    /// The value over all updates since the last reset (NaN with no updates).
    fn result(&self) -> Result<f64>;
    /// Forgets all updates.
    fn reset(&mut self);
    /// The running sums behind [`Metric::result`] (empty with no updates), which add
    /// element-wise across workers: a multi-worker run adds every worker's state and loads the
    /// sum back with [`Metric::set_state`] before reading the result.
    fn state(&self) -> Result<Vec<f64>>;
    /// Replaces the running sums by `state` (empty: no updates), as [`Metric::state`] gives it.
    fn set_state(&mut self, state: &[f64]) -> Result<()>;
}

/// Weighted mean of the elements of output `value_key`, weighted by output `weight_key`, or
/// the plain mean when there is no weight key (`Mean` of a per-step scalar, an accuracy over
/// masked positions, ...).
pub struct WeightedMean {
    name: String,
    value_key: String,
    weight_key: Option<String>,
    total: Option<Tensor>,
    weight: Option<Tensor>,
}

impl WeightedMean {
    /// The mean of every element of `value_key` over all steps.
    pub fn new(name: &str, value_key: &str) -> Self {
        Self::build(name, value_key, None)
    }

    /// The mean of `value_key` weighted by `weight_key` (same shape).
    pub fn weighted(name: &str, value_key: &str, weight_key: &str) -> Self {
        Self::build(name, value_key, Some(weight_key))
    }

    fn build(name: &str, value_key: &str, weight_key: Option<&str>) -> Self {
        WeightedMean {
            name: name.to_string(),
            value_key: value_key.to_string(),
            weight_key: weight_key.map(str::to_string),
            total: None,
            weight: None,
        }
    }
}

fn accumulate(slot: &mut Option<Tensor>, value: Tensor) -> Result<()> {
    let value = value.detach();
    *slot = Some(match slot.take() {
        Some(sum) => (sum + value)?,
        None => value,
    });
    Ok(())
}

impl Metric for WeightedMean {
    fn name(&self) -> &str {
        &self.name
    }

    fn update(&mut self, outputs: &StepOutputs) -> Result<()> {
        let values = outputs
            .value(&self.value_key)?
            .detach()
            .to_dtype(candle_core::DType::F32)?;
        let (total, weight) = match &self.weight_key {
            Some(key) => {
                let weights = outputs
                    .value(key)?
                    .detach()
                    .to_dtype(candle_core::DType::F32)?;
                ((values * &weights)?.sum_all()?, weights.sum_all()?)
            }
            None => {
                let count = values.elem_count() as f64;
                (
                    values.sum_all()?,
                    Tensor::new(count as f32, values.device())?,
                )
            }
        };
        accumulate(&mut self.total, total)?;
        accumulate(&mut self.weight, weight)
    }

    fn result(&self) -> Result<f64> {
        match (&self.total, &self.weight) {
            (Some(total), Some(weight)) => {
                let weight = f64::from(weight.to_scalar::<f32>()?);
                let total = f64::from(total.to_scalar::<f32>()?);
                Ok(if weight == 0.0 { 0.0 } else { total / weight })
            }
            _ => Ok(f64::NAN),
        }
    }

    fn reset(&mut self) {
        self.total = None;
        self.weight = None;
    }

    fn state(&self) -> Result<Vec<f64>> {
        match (&self.total, &self.weight) {
            (Some(total), Some(weight)) => Ok(vec![
                f64::from(total.to_scalar::<f32>()?),
                f64::from(weight.to_scalar::<f32>()?),
            ]),
            _ => Ok(Vec::new()),
        }
    }

    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        match *state {
            [] => self.reset(),
            [total, weight] => {
                self.total = Some(Tensor::new(total as f32, &candle_core::Device::Cpu)?);
                self.weight = Some(Tensor::new(weight as f32, &candle_core::Device::Cpu)?);
            }
            _ => {
                return Err(crate::Error::Run(format!(
                    "metric {}: a weighted mean's state is [total, weight], not {} numbers",
                    self.name,
                    state.len()
                )))
            }
        }
        Ok(())
    }
}

/// Reads every metric's result into `(name, value)` pairs and resets them.
pub fn collect_and_reset(metrics: &mut [Box<dyn Metric>]) -> Result<Vec<(String, f64)>> {
    metrics
        .iter_mut()
        .map(|m| {
            let value = m.result()?;
            m.reset();
            Ok((m.name().to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn outputs(values: &[f32], weights: &[f32]) -> StepOutputs {
        let mut out = StepOutputs::default();
        out.insert("v", Tensor::new(values, &Device::Cpu).unwrap());
        out.insert("w", Tensor::new(weights, &Device::Cpu).unwrap());
        out
    }

    #[test]
    fn a_weighted_mean_state_round_trips_and_the_sum_of_two_states_is_the_mean_of_both() {
        let mut first = WeightedMean::weighted("acc", "v", "w");
        first.update(&outputs(&[1.0, 0.0], &[1.0, 1.0])).unwrap();
        let mut second = WeightedMean::weighted("acc", "v", "w");
        assert!(second.state().unwrap().is_empty());
        second.update(&outputs(&[1.0, 1.0], &[1.0, 0.0])).unwrap();
        let summed: Vec<f64> = first
            .state()
            .unwrap()
            .iter()
            .zip(second.state().unwrap())
            .map(|(a, b)| a + b)
            .collect();
        first.set_state(&summed).unwrap();
        assert_eq!(first.result().unwrap(), 2.0 / 3.0);
        first.set_state(&[]).unwrap();
        assert!(first.result().unwrap().is_nan());
        assert!(first.set_state(&[1.0]).is_err());
    }

    #[test]
    fn weighted_mean_accumulates_over_steps_and_resets() {
        let mut m = WeightedMean::weighted("acc", "v", "w");
        m.update(&outputs(&[1.0, 0.0, 1.0], &[1.0, 1.0, 0.0]))
            .unwrap();
        m.update(&outputs(&[1.0, 1.0, 1.0], &[1.0, 1.0, 0.0]))
            .unwrap();
        assert!((m.result().unwrap() - 0.75).abs() < 1e-6);
        let mut all: Vec<Box<dyn Metric>> = vec![Box::new(m)];
        let values = collect_and_reset(&mut all).unwrap();
        assert_eq!(values[0].0, "acc");
        assert!(all[0].result().unwrap().is_nan());
    }

    #[test]
    fn plain_mean_counts_elements() {
        let mut m = WeightedMean::new("loss", "v");
        m.update(&outputs(&[2.0], &[0.0])).unwrap();
        m.update(&outputs(&[4.0], &[0.0])).unwrap();
        assert!((m.result().unwrap() - 3.0).abs() < 1e-6);
    }

    #[test]
    fn a_missing_output_is_named() {
        let mut m = WeightedMean::new("x", "nope");
        let err = m.update(&outputs(&[1.0], &[1.0])).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
