//! Workers as the processes of an MPI job (OpenMPI, MPICH), launched by `mpirun` / `srun`.
//!
//! MPI is initialised with `MPI_THREAD_MULTIPLE`: the operations run on Grove's compute
//! threads, one at a time (a mutex keeps them in order), while the watchdog thread may abort
//! the job. The sum of an all-reduce is formed once, at the chief (`MPI_Reduce`, whose result
//! the standard asks to be the same for the same inputs in the same order), and broadcast, so
//! every worker holds the same bits whatever algorithm the library picks for `MPI_Allreduce`.

use std::os::raw::c_int;
use std::sync::Mutex;
use std::time::Duration;

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;

use crate::watchdog::Watchdog;
use crate::{Collective, CollectiveError, Result};

/// Exit code of a job aborted because an operation timed out (a run failure).
const TIMEOUT_EXIT_CODE: c_int = 1;

/// The world of an MPI job.
pub struct MpiCollective {
    /// Finalises MPI when dropped.
    _universe: Universe,
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    watchdog: Watchdog,
}

// SAFETY: MPI runs with MPI_THREAD_MULTIPLE (checked in `initialize`), so its handles may be
// used from any thread; every operation also takes `world`'s lock, so they never overlap.
unsafe impl Send for MpiCollective {}
// SAFETY: as above.
unsafe impl Sync for MpiCollective {}

impl MpiCollective {
    /// Joins the MPI job this process was launched in (a job of one outside `mpirun`); an
    /// operation waiting longer than `timeout` aborts the whole job (zero: never). MPI can be
    /// initialised once per process: a second call is an error.
    pub fn initialize(timeout: Duration) -> Result<Self> {
        let not_started = |reason: String| CollectiveError::Engine {
            operation: "MPI_Init_thread",
            reason,
        };
        let (universe, threading) = mpi::initialize_with_threading(Threading::Multiple)
            .ok_or_else(|| not_started("MPI is initialised already in this process".into()))?;
        if threading != Threading::Multiple {
            return Err(not_started(format!(
                "the MPI library offers {threading:?} threading, and Grove needs Multiple \
                 (its compute threads and watchdog call MPI); use an MPI built with thread \
                 support (OpenMPI and MPICH are, as Debian packages them)"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let watchdog = Watchdog::start(timeout, move |operation, waited| {
            tracing::error!(
                "worker {rank}: {operation} waited {:.1} s for the other workers, past \
                 runtime.collective_timeout = {} s: a worker died or hangs; aborting the job",
                waited.as_secs_f64(),
                timeout.as_secs_f64()
            );
            eprintln!(
                "error: worker {rank} of {size}: collective {operation} timed out after {:.1} s \
                 (runtime.collective_timeout); another worker died or hangs",
                waited.as_secs_f64()
            );
            SimpleCommunicator::world().abort(TIMEOUT_EXIT_CODE)
        });
        Ok(MpiCollective {
            _universe: universe,
            world: Mutex::new(world),
            rank,
            size,
            watchdog,
        })
    }

    /// Runs `operation` on the world communicator under the watchdog.
    fn with_world<R>(
        &self,
        name: &'static str,
        operation: impl FnOnce(&SimpleCommunicator) -> R,
    ) -> R {
        let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        let _underway = self.watchdog.underway(name);
        operation(&world)
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        self.with_world("all_reduce", |world| {
            let chief = world.process_at_rank(0);
            if self.rank == 0 {
                let mine = values.to_vec();
                chief.reduce_into_root(&mine[..], values, SystemOperation::sum());
            } else {
                chief.reduce_into(&values[..], SystemOperation::sum());
            }
            chief.broadcast_into(values);
        });
        Ok(())
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        self.with_world("broadcast", |world| {
            let chief = world.process_at_rank(0);
            let mut length = bytes.len() as u64;
            chief.broadcast_into(&mut length);
            bytes.resize(length as usize, 0);
            if length > 0 {
                chief.broadcast_into(&mut bytes[..]);
            }
        });
        Ok(())
    }

    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        if self.size == 1 {
            return Ok(vec![bytes.to_vec()]);
        }
        let count = c_int::try_from(bytes.len()).map_err(|_| CollectiveError::Engine {
            operation: "all_gather",
            reason: format!("{} bytes exceed MPI's count limit", bytes.len()),
        })?;
        self.with_world("all_gather", |world| {
            let mut counts = vec![0 as c_int; self.size];
            world.all_gather_into(&count, &mut counts[..]);
            let displacements: Vec<c_int> = counts
                .iter()
                .scan(0, |offset, &n| {
                    let start = *offset;
                    *offset += n;
                    Some(start)
                })
                .collect();
            let total = counts.iter().map(|&n| n as usize).sum();
            if total == 0 {
                return Ok(vec![Vec::new(); self.size]);
            }
            let mut gathered = vec![0u8; total];
            let mut partition =
                PartitionMut::new(&mut gathered[..], &counts[..], &displacements[..]);
            world.all_gather_varcount_into(bytes, &mut partition);
            Ok(counts
                .iter()
                .zip(&displacements)
                .map(|(&n, &start)| gathered[start as usize..(start + n) as usize].to_vec())
                .collect())
        })
    }

    fn barrier(&self) -> Result<()> {
        self.with_world("barrier", |world| world.barrier());
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }
}
