//! A deadline on every collective operation: a worker that died or hangs leaves the others
//! blocked in an operation that never completes, so a thread beside them ends the job once an
//! operation has waited longer than the timeout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The operation under way and when it started.
type Pending = Option<(&'static str, Instant)>;

/// Watches the operations of one worker.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pending: Arc<Mutex<Pending>>,
}

/// Marks an operation as under way until dropped.
pub(crate) struct Underway<'a> {
    pending: &'a Mutex<Pending>,
}

impl Watchdog {
    /// Starts watching: `expire(operation, waited)` runs (and must end the process) when one
    /// operation waits longer than `timeout`. A zero `timeout` never expires.
    pub(crate) fn start(
        timeout: Duration,
        expire: impl Fn(&'static str, Duration) + Send + 'static,
    ) -> Self {
        let pending: Arc<Mutex<Pending>> = Arc::default();
        if !timeout.is_zero() {
            let watched = Arc::clone(&pending);
            let poll = (timeout / 20).clamp(Duration::from_millis(10), Duration::from_secs(1));
            std::thread::Builder::new()
                .name("grove-collective-watchdog".to_string())
                .spawn(move || loop {
                    std::thread::sleep(poll);
                    let overdue = match *watched.lock().unwrap_or_else(|e| e.into_inner()) {
                        Some((operation, since)) if since.elapsed() > timeout => {
                            Some((operation, since.elapsed()))
                        }
                        _ => None,
                    };
                    if let Some((operation, waited)) = overdue {
                        expire(operation, waited);
                    }
                })
                .expect("the watchdog thread starts");
        }
        Watchdog { pending }
    }

    /// Marks `operation` as under way from now until the returned guard is dropped.
    pub(crate) fn underway(&self, operation: &'static str) -> Underway<'_> {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some((operation, Instant::now()));
        Underway {
            pending: &self.pending,
        }
    }
}

impl Drop for Underway<'_> {
    fn drop(&mut self) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn an_operation_past_its_deadline_is_reported_with_its_name_and_a_finished_one_is_not() {
        let (sender, receiver) = mpsc::channel();
        let sender = Mutex::new(sender);
        let watchdog = Watchdog::start(Duration::from_millis(50), move |operation, waited| {
            let _ = sender.lock().unwrap().send((operation, waited));
        });
        drop(watchdog.underway("barrier"));
        assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err());
        let _stuck = watchdog.underway("all_reduce");
        let (operation, waited) = receiver.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(operation, "all_reduce");
        assert!(waited >= Duration::from_millis(50));
    }
}
