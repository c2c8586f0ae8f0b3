//! The `train` binary's part in a multi-worker job: it joins the MPI job it was launched in
//! before building anything, and at the end either leaves it in step with the other workers
//! or, on a failure, takes the whole job down.

use std::sync::Arc;

use grove_collective::Collective;
use grove_core::config::{DistributionStrategy, RuntimeConfig};
use grove_core::Error;

/// Joins the job's worker group when `runtime` asks for `multi_worker_mirrored`.
pub fn join_if_asked(runtime: &RuntimeConfig) -> Result<(), Error> {
    if runtime.distribution_strategy != DistributionStrategy::MultiWorkerMirrored {
        return Ok(());
    }
    let workers = connect(runtime)?;
    tracing::info!(
        "multi_worker_mirrored: worker {} of {}",
        workers.rank(),
        workers.size()
    );
    grove_collective::join(workers).map_err(|e| Error::Run(e.to_string()))
}

#[cfg(feature = "mpi")]
fn connect(runtime: &RuntimeConfig) -> Result<Arc<dyn Collective>, Error> {
    let world = grove_collective::mpi::MpiCollective::initialize(runtime.collective_timeout.0)
        .map_err(|e| Error::Run(format!("cannot join the MPI job: {e}")))?;
    Ok(Arc::new(world))
}

#[cfg(not(feature = "mpi"))]
fn connect(_runtime: &RuntimeConfig) -> Result<Arc<dyn Collective>, Error> {
    Err(Error::Config(
        "runtime.distribution_strategy = multi_worker_mirrored runs on MPI, and this `train` \
         was built without it: build with `cargo build --release --features mpi` (needs an \
         MPI library such as Debian's libopenmpi-dev, and libclang-dev), then launch it with \
         mpirun or srun"
            .to_string(),
    ))
}

/// `worker <rank> of <size>: ` while this process is a worker of a job (for error lines).
pub fn error_prefix() -> String {
    grove_collective::joined()
        .map(|w| format!("worker {} of {}: ", w.rank(), w.size()))
        .unwrap_or_default()
}

/// Leaves the job at the end of the run with exit `code`: a finished or preempted run
/// (every worker stopped at the same step) leaves in step with the others; any other
/// failure aborts the job, so that no worker waits for this one for ever.
pub fn leave(code: u8, clean: bool) {
    let Some(workers) = grove_collective::leave() else {
        return;
    };
    if !clean {
        workers.abort(i32::from(code));
    }
    if let Err(e) = workers.barrier() {
        eprintln!("{}error: {e}", error_prefix());
    }
}
