//! Timing log lines for benchmarks, compiled in by the `instrumentation` feature (which
//! grove-benches switches on): the time from the start of `main` to the end of the first
//! training step, which benches/harness.py reads from the log. Without the feature both
//! functions do nothing, so ordinary runs carry no benchmark hooks.

#[cfg(feature = "instrumentation")]
mod timing {
    use std::sync::{Once, OnceLock};
    use std::time::Instant;

    static PROCESS_START: OnceLock<Instant> = OnceLock::new();

    pub fn mark_process_start() {
        PROCESS_START.get_or_init(Instant::now);
    }

    pub fn first_step_done() {
        static LOGGED: Once = Once::new();
        LOGGED.call_once(|| {
            if let Some(start) = PROCESS_START.get() {
                let seconds = start.elapsed().as_secs_f64();
                tracing::info!("first step done after {seconds:.3} s");
            }
        });
    }
}

/// Records the start of the process; a binary calls it first thing in `main` (later calls do
/// nothing).
pub fn mark_process_start() {
    #[cfg(feature = "instrumentation")]
    timing::mark_process_start();
}

/// Logs, once per process, `first step done after <s> s` (seconds since
/// [`mark_process_start`]); called after every training step.
pub(crate) fn first_step_done() {
    #[cfg(feature = "instrumentation")]
    timing::first_step_done();
}
