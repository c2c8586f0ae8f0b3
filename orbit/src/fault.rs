//! Fault injection for crash tests, compiled in only with the `fault-injection` cargo feature
//! (the crash tests turn it on; without it every [`fault_point`] is a no-op and the variable
//! is never read): `GROVE_FAULT_INJECT=<point>:<n>` aborts the process the
//! n-th time it reaches the named point (`train_step`, `checkpoint_files_written`,
//! `checkpoint_manifest_written`, `checkpoint_renamed`, `checkpoint_indexed`), as a kill -9 or a
//! power cut would; `<point>:<n>:enospc` makes that point fail with "no space left on device"
//! instead, as a full disk would, `<point>:<n>:hang` stops the thread there for ever, as a
//! stuck worker would, and `<point>:<n>:sigterm` sends the process SIGTERM there, as a
//! scheduler preempting one worker of a job would. Unset, every point is a no-op.

/// The environment variable naming the fault.
pub const FAULT_VARIABLE: &str = "GROVE_FAULT_INJECT";

#[cfg(feature = "fault-injection")]
pub use injected::fault_point;

/// A fault point of a build without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fault_point(_point: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(feature = "fault-injection")]
mod injected {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    use super::FAULT_VARIABLE;

    struct Fault {
        point: String,
        occurrence: u64,
        disk_full: bool,
        hang: bool,
        sigterm: bool,
        seen: AtomicU64,
    }

    fn fault() -> Option<&'static Fault> {
        static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
        FAULT
            .get_or_init(|| {
                let text = std::env::var(FAULT_VARIABLE).ok()?;
                let hang = text.ends_with(":hang");
                let text = text.strip_suffix(":hang").unwrap_or(&text).to_string();
                let sigterm = text.ends_with(":sigterm");
                let text = text.strip_suffix(":sigterm").unwrap_or(&text).to_string();
                let (text, disk_full) = match text.strip_suffix(":enospc") {
                    Some(rest) => (rest.to_string(), true),
                    None => (text, false),
                };
                let (point, occurrence) = text.rsplit_once(':')?;
                Some(Fault {
                    point: point.to_string(),
                    occurrence: occurrence.parse().ok()?,
                    disk_full,
                    hang,
                    sigterm,
                    seen: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    /// Aborts the process here, or fails like a full disk, if `GROVE_FAULT_INJECT` names this
    /// point and occurrence.
    pub fn fault_point(point: &str) -> std::io::Result<()> {
        let Some(fault) = fault() else {
            return Ok(());
        };
        if fault.point != point || fault.seen.fetch_add(1, Ordering::SeqCst) + 1 != fault.occurrence
        {
            return Ok(());
        }
        if fault.disk_full {
            const ENOSPC: i32 = 28;
            return Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
        if fault.sigterm {
            eprintln!("{FAULT_VARIABLE}: SIGTERM at {point} #{}", fault.occurrence);
            return signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
        }
        if fault.hang {
            eprintln!("{FAULT_VARIABLE}: hanging at {point} #{}", fault.occurrence);
            loop {
                std::thread::park();
            }
        }
        eprintln!(
            "{FAULT_VARIABLE}: aborting at {point} #{}",
            fault.occurrence
        );
        std::process::abort();
    }
}
