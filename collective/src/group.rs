//! The worker group this process belongs to. A process joins at most one (MPI's world is one
//! per process), before the trainer is built, and leaves it when the run is over, which
//! for MPI finalizes the library.

use std::sync::{Arc, Mutex};

use crate::{Collective, CollectiveError, Result};

static GROUP: Mutex<Option<Arc<dyn Collective>>> = Mutex::new(None);

/// Makes `workers` the group of this process (an error if it joined one already).
pub fn join(workers: Arc<dyn Collective>) -> Result<()> {
    let mut group = GROUP.lock().unwrap_or_else(|e| e.into_inner());
    if group.is_some() {
        return Err(CollectiveError::Engine {
            operation: "join",
            reason: "this process joined a worker group already".to_string(),
        });
    }
    *group = Some(workers);
    Ok(())
}

/// The group this process joined, if any.
pub fn joined() -> Option<Arc<dyn Collective>> {
    GROUP.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Leaves the group and returns it (MPI is finalized when the last reference is dropped).
pub fn leave() -> Option<Arc<dyn Collective>> {
    GROUP.lock().unwrap_or_else(|e| e.into_inner()).take()
}
