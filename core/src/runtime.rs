//! The runtime a run executes on: the device, the number of compute threads, and the time
//! since the process started (for the time to the first training step).

use std::sync::OnceLock;

use candle_core::Device;

use crate::config::{DeviceSpec, RuntimeConfig};
use crate::error::{Error, Result};

/// The candle device `runtime.device` names.
pub fn device(runtime: &RuntimeConfig) -> Result<Device> {
    match runtime.device_spec()? {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(ordinal) => cuda_device(ordinal),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| {
        Error::Config(format!(
            "runtime.device = cuda:{ordinal} cannot be opened ({e}); check the GPU and driver"
        ))
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Err(Error::Config(format!(
        "runtime.device = cuda:{ordinal} needs a build with the `cuda` cargo feature \
         (cargo build --release --features cuda); use runtime.device=cpu on this build"
    )))
}

/// Applies `runtime.num_threads` to the compute threads (rayon's pool, which runs the matrix
/// multiplies and Grove's fused kernels); 0 keeps the default of one thread per core. Must run
/// before the first tensor operation of the process.
///
/// candle's own element-wise worker pool is kept to the calling thread: its workers spin
/// between ops and take cores from the matrix multiplies.
pub fn set_compute_threads(num_threads: usize) {
    // SAFETY: called at start-up, before candle or rayon start any thread that reads the
    // environment.
    if num_threads > 0 {
        std::env::set_var("RAYON_NUM_THREADS", num_threads.to_string());
    }
    std::env::set_var("CANDLE_NUM_THREADS", "1");
}

/// Runs `work` on one of the compute threads and returns its result.
///
/// candle's matrix multiplies and Grove's fused kernels split each op over rayon's pool. A
/// caller outside the pool hands every op to the pool's workers and sleeps until they finish:
/// one wake-up of each side per op, hundreds of ops per step. Run from a worker, the caller
/// takes its own share of each op and idle workers steal the rest (BERT-mini step 475 → 405
/// ms on 2 vCPU of an AMD EPYC, AVX-512). Called from a compute thread it just runs `work`.
pub fn on_compute_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// The number of compute threads candle uses.
pub fn compute_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// The allocator's reclaim function, if the binary installed one.
static RECLAIM: OnceLock<fn()> = OnceLock::new();

/// Installs `reclaim`, which makes memory that other threads freed to the calling thread's
/// heap reusable (mimalloc's `mi_collect`). A replica's thread allocates its activations and
/// gradients and the trainer frees many of them on another thread; an allocator with
/// per-thread heaps may only take those blocks back lazily, and meanwhile maps new memory
/// (BERT-mini's peak resident memory crept from 296 to 343 MB over 8 steps). Later calls do
/// nothing.
pub fn set_memory_reclaim(reclaim: fn()) {
    let _ = RECLAIM.set(reclaim);
}

/// Runs the reclaim function of [`set_memory_reclaim`] on the calling thread, if there is
/// one.
pub fn reclaim_freed_memory() {
    if let Some(reclaim) = RECLAIM.get() {
        reclaim();
    }
}
