//! A terminal progress bar for the train loop.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::logs::Logs;

/// The bar's layout: elapsed time, bar, global step of target, speed, ETA and message.
const TEMPLATE: &str =
    "{elapsed_precise} [{wide_bar}] {pos}/{len} steps ({per_sec}, eta {eta}) {msg}";

/// A progress bar on stderr showing the global step, or a no-op when stderr is not a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar from `start_step` to `target_step`; hidden unless stderr is a terminal.
    pub fn new(target_step: u64, start_step: u64) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(target_step), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_position(start_step);
        bar.reset_eta();
        Progress { bar }
    }

    /// Moves the bar to `step` and shows `training_loss` / `learning_rate` from `logs`.
    pub fn update(&self, step: u64, logs: &Logs) {
        self.bar.set_position(step);
        self.bar.set_message(message(logs));
    }

    /// Leaves the bar, completed as far as it got, on the terminal.
    pub fn finish(&self) {
        self.bar.abandon();
    }

    /// Runs `f` with the bar cleared, so what `f` prints is not overwritten, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }
}

/// `loss 2.345 lr 1.0e-4`, each part only if its log is present.
fn message(logs: &Logs) -> String {
    let loss = logs.get("training_loss").map(|v| format!("loss {v:.3}"));
    let lr = logs.get("learning_rate").map(|v| format!("lr {v:.1e}"));
    [loss, lr]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shows_loss_and_learning_rate() {
        let mut logs = Logs::new();
        assert_eq!(message(&logs), "");
        logs.insert("training_loss".into(), 2.34512);
        assert_eq!(message(&logs), "loss 2.345");
        logs.insert("learning_rate".into(), 1e-4);
        assert_eq!(message(&logs), "loss 2.345 lr 1.0e-4");
    }

    #[test]
    fn hidden_bar_accepts_every_call() {
        let progress = Progress::new(10, 2);
        progress.update(5, &Logs::new());
        assert_eq!(progress.suspend(|| 7), 7);
        progress.finish();
    }
}
