//! The gradient all-reduce of `multi_worker_mirrored` alone: a buffer of a model's size summed
//! over the workers of an MPI job in buckets, as the strategy sums its gradients.

use std::time::Instant;

use grove_core::config::{DistributionStrategy, RuntimeConfig};
use serde_json::json;

/// Milliseconds per all-reduce of `elements` f32 values in `bucket_mb` MiB buckets (0: one
/// call): `warmup` rounds, then the median of `rounds`; with the bytes each worker sends.
pub fn measure(
    elements: usize,
    bucket_mb: f64,
    warmup: usize,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        rounds > 0 && elements > 0,
        "--rounds and --elements must be positive"
    );
    let runtime = RuntimeConfig {
        distribution_strategy: DistributionStrategy::MultiWorkerMirrored,
        ..RuntimeConfig::default()
    };
    grove_experiments::workers::join_if_asked(&runtime)?;
    let workers = grove_collective::joined().expect("joined above");
    let bucket = match (bucket_mb * 1024.0 * 1024.0 / 4.0) as usize {
        0 => elements,
        n => n,
    };
    let mut values: Vec<f32> = (0..elements).map(|i| (i % 7) as f32 * 1e-3).collect();
    let mut times = Vec::with_capacity(rounds);
    for round in 0..warmup + rounds {
        workers.barrier()?;
        let started = Instant::now();
        for chunk in values.chunks_mut(bucket) {
            workers.all_reduce_sum(chunk)?;
        }
        if round >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(json!({
        "benchmark": "all_reduce",
        "workers": workers.size(),
        "elements": elements,
        "bytes_per_worker": elements * 4,
        "bucket_mb": bucket_mb,
        "median_ms": times[times.len() / 2],
        "min_ms": times[0],
    }))
}
