//! Fault injection for crash tests: `GROVE_FAULT_INJECT=<point>:<n>` aborts the process the
//! n-th time it reaches the named point (`train_step`, `checkpoint_files_written`,
//! `checkpoint_manifest_written`, `checkpoint_renamed`, `checkpoint_indexed`), as a kill -9 or a
//! power cut would. Unset, every point is a no-op.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the fault.
pub const FAULT_VARIABLE: &str = "GROVE_FAULT_INJECT";

struct Fault {
    point: String,
    occurrence: u64,
    seen: AtomicU64,
}

fn fault() -> Option<&'static Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let text = std::env::var(FAULT_VARIABLE).ok()?;
            let (point, occurrence) = text.rsplit_once(':')?;
            Some(Fault {
                point: point.to_string(),
                occurrence: occurrence.parse().ok()?,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process here if `GROVE_FAULT_INJECT` names this point and occurrence.
pub fn fault_point(point: &str) {
    let Some(fault) = fault() else {
        return;
    };
    if fault.point == point && fault.seen.fetch_add(1, Ordering::SeqCst) + 1 == fault.occurrence {
        eprintln!(
            "{FAULT_VARIABLE}: aborting at {point} #{}",
            fault.occurrence
        );
        std::process::abort();
    }
}
