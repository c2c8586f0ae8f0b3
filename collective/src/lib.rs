//! The collective operations multi-worker training runs on, behind one small trait: an
//! all-reduce sum of `f32` buffers, a broadcast and an all-gather of bytes, and a barrier.
//!
//! Grove does not move bytes between machines itself: [`mpi`] (the `mpi` cargo feature) runs
//! the workers as the processes of an MPI job (`mpirun`, `srun`), and a GPU engine such as
//! NCCL would implement [`Collective`] beside it, bootstrapped by a broadcast over MPI.
//! [`SingleProcess`] is the group of one that a run without workers uses.

mod group;
#[cfg(feature = "mpi")]
pub mod mpi;
mod single;
#[cfg(feature = "mpi")]
mod watchdog;

pub use group::{join, joined, leave};
pub use single::SingleProcess;

/// What a collective operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError {
    /// The engine reported an error.
    #[error("{operation} failed: {reason}")]
    Engine {
        /// The operation, e.g. `all_reduce`.
        operation: &'static str,
        /// What the engine said.
        reason: String,
    },
    /// Workers disagree on what they hold (e.g. different initial weights).
    #[error("{0}")]
    Mismatch(String),
    /// The binary was built without the engine the run asks for.
    #[error("{0}")]
    NotBuilt(String),
}

/// `Result` of a collective operation.
pub type Result<T> = std::result::Result<T, CollectiveError>;

/// A fixed group of workers, each calling the same operations in the same order; an operation
/// returns once every worker has called it.
pub trait Collective: Send + Sync {
    /// This worker, below [`Collective::size`]; worker 0 is the chief.
    fn rank(&self) -> usize;

    /// The number of workers.
    fn size(&self) -> usize;

    /// Whether this worker is the chief (worker 0), the one that writes.
    fn is_chief(&self) -> bool {
        self.rank() == 0
    }

    /// Replaces `values` by the element-wise sum of every worker's `values` (all of one
    /// length). Every worker ends with the same bits: the sum is formed in one order and
    /// shared, never summed separately on each worker.
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()>;

    /// Replaces `bytes` on every worker by the chief's.
    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<()>;

    /// Every worker's `bytes`, in rank order, on every worker.
    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Returns once every worker has called it.
    fn barrier(&self) -> Result<()>;

    /// Ends every worker's process at once with exit `code` (a worker that fails takes the
    /// job down instead of leaving the others waiting in an operation).
    fn abort(&self, code: i32) -> !;

    /// Fails, naming the workers, unless every worker passed the same `value`; `what` says
    /// what it is (e.g. "the initial weights' checksum").
    fn check_agreement(&self, what: &str, value: u64) -> Result<()> {
        let values: Vec<u64> = self
            .all_gather(&value.to_le_bytes())?
            .into_iter()
            .map(|bytes| u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
            .collect();
        let chief = values[0];
        let differing: Vec<String> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != chief)
            .map(|(rank, v)| format!("worker {rank} has {v:#018x}"))
            .collect();
        if differing.is_empty() {
            return Ok(());
        }
        Err(CollectiveError::Mismatch(format!(
            "the workers disagree on {what}: the chief has {chief:#018x}, {}; every worker must \
             run the same binary, config and data",
            differing.join(", ")
        )))
    }
}
