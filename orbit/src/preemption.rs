//! Preemption: SIGTERM or SIGINT asks the run to stop after the current step, save a checkpoint
//! and exit, so the same command resumes it. A second signal while stopping ends the process at
//! once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::action::{Action, ActionContext, Directive};
use crate::error::{OrbitError, Result};

/// A shared stop request, set by a signal (or by [`Preemption::request`]).
#[derive(Debug, Clone, Default)]
pub struct Preemption {
    requested: Arc<AtomicBool>,
}

impl Preemption {
    /// A request that only [`Preemption::request`] sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request set by SIGTERM and SIGINT; a second such signal exits the process with
    /// code 1 immediately.
    pub fn on_signals() -> Result<Self> {
        let preemption = Self::new();
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let register = signal_hook::flag::register_conditional_shutdown(
                signal,
                1,
                Arc::clone(&preemption.requested),
            )
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&preemption.requested)));
            register.map_err(|e| OrbitError::io("cannot install a handler for", "signals", e))?;
        }
        Ok(preemption)
    }

    /// Asks the run to stop.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// A train action: [`Directive::Preempt`] after the first train loop that ends with a stop
/// requested.
impl Action for Preemption {
    fn name(&self) -> &str {
        "preemption"
    }

    fn run(&mut self, _: ActionContext<'_>) -> Result<Directive> {
        Ok(match self.requested() {
            true => Directive::Preempt,
            false => Directive::Continue,
        })
    }
}
