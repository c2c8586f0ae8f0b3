//! What the workers of a job combine besides gradients: metric states, sums of losses and
//! the host aggregates of `aggregate_logs`. Each worker's values are gathered to every worker
//! and combined in rank order there, so every worker reads the same logs and takes the same
//! decisions (early stopping, best checkpoint); with one process, nothing moves.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;

use grove_collective::Collective;
use grove_core::error::{Error, Result};
use grove_core::metrics::Metric;
use grove_core::task::Aggregate;
use grove_core::vars::ModelVars;

use super::multi_worker::collective_error;

/// Every worker's `value`, in rank order.
fn gather_json<T: serde::Serialize + serde::de::DeserializeOwned>(
    workers: &dyn Collective,
    value: &T,
) -> Result<Vec<T>> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Run(e.to_string()))?;
    workers
        .all_gather(&bytes)
        .map_err(collective_error)?
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).map_err(|e| Error::Run(e.to_string())))
        .collect()
}

/// Loads into each metric the sum of every worker's state of it.
pub(crate) fn reduce_metrics(
    workers: Option<&dyn Collective>,
    metrics: &mut [Box<dyn Metric>],
) -> Result<()> {
    let Some(workers) = workers else {
        return Ok(());
    };
    let states = metrics
        .iter()
        .map(|m| m.state())
        .collect::<Result<Vec<_>>>()?;
    let gathered = gather_json(workers, &states)?;
    for (index, metric) in metrics.iter_mut().enumerate() {
        let mut sum: Vec<f64> = Vec::new();
        for state in gathered.iter().map(|states| &states[index]) {
            if sum.is_empty() {
                sum = state.clone();
            } else if !state.is_empty() {
                if state.len() != sum.len() {
                    return Err(Error::Run(format!(
                        "metric {}: the workers' states differ in length ({} and {})",
                        metric.name(),
                        sum.len(),
                        state.len()
                    )));
                }
                sum.iter_mut().zip(state).for_each(|(s, v)| *s += v);
            }
        }
        metric.set_state(&sum)?;
    }
    Ok(())
}

/// Every worker's `value`, in rank order (for what each worker must find again on resume).
pub(crate) fn gather_all<T: serde::Serialize + serde::de::DeserializeOwned>(
    workers: &dyn Collective,
    value: &T,
) -> Result<Vec<T>> {
    gather_json(workers, value)
}

/// Replaces each of `values` by its sum over the workers.
pub(crate) fn reduce_sums(workers: Option<&dyn Collective>, values: &mut [f64]) -> Result<()> {
    let Some(workers) = workers else {
        return Ok(());
    };
    let gathered = gather_json(workers, &values.to_vec())?;
    for (index, value) in values.iter_mut().enumerate() {
        *value = gathered.iter().map(|worker| worker[index]).sum();
    }
    Ok(())
}

/// Every worker's aggregate merged: each key's values in rank order (`None` when no worker
/// has one).
pub(crate) fn gather_aggregate(
    workers: Option<&dyn Collective>,
    aggregate: Option<Aggregate>,
) -> Result<Option<Aggregate>> {
    let Some(workers) = workers else {
        return Ok(aggregate);
    };
    let mut merged: Option<Aggregate> = None;
    for worker in gather_json(workers, &aggregate)?.into_iter().flatten() {
        let merged = merged.get_or_insert_with(Aggregate::new);
        for (key, values) in worker {
            merged.entry(key).or_default().extend(values);
        }
    }
    Ok(merged)
}

/// A checksum of every variable's name, shape and bits and of `step`, which the workers
/// compare after restoring or initializing: different weights would train different models.
pub(crate) fn weights_checksum(vars: &ModelVars, step: u64) -> Result<u64> {
    let mut hasher = DefaultHasher::new();
    hasher.write_u64(step);
    for (name, tensor) in vars.tensors() {
        hasher.write(name.as_bytes());
        for &dim in tensor.dims() {
            hasher.write_usize(dim);
        }
        let values = tensor
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for value in values {
            hasher.write_u32(value.to_bits());
        }
    }
    Ok(hasher.finish())
}
