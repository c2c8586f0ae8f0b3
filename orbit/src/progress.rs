//! A terminal progress bar for the train loop.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::logs::Logs;

/// The bar's layout: elapsed time, bar, global step of target, speed, ETA and message.
const TEMPLATE: &str = "{elapsed_precise} [{wide_bar}] {pos}/{len} steps ({rate}, eta {eta}) {msg}";

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
            .with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = out.write_str(&rate(state.per_sec()));
                },
            )
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

/// The training speed as a person reads it: `115.7 steps/s`, or `2.50 s/step` below one step
/// a second (indicatif's own `{per_sec}` prints `115.6536/s`).
fn rate(steps_per_second: f64) -> String {
    if !steps_per_second.is_finite() || steps_per_second <= 0.0 {
        "- steps/s".to_string()
    } else if steps_per_second >= 1.0 {
        format!("{steps_per_second:.1} steps/s")
    } else {
        format!("{:.2} s/step", 1.0 / steps_per_second)
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
    fn rate_reads_in_steps_per_second_or_seconds_per_step() {
        assert_eq!(rate(115.6536), "115.7 steps/s");
        assert_eq!(rate(1.0), "1.0 steps/s");
        assert_eq!(rate(0.4), "2.50 s/step");
        assert_eq!(rate(0.0), "- steps/s");
        assert_eq!(rate(f64::NAN), "- steps/s");
    }

    #[test]
    fn hidden_bar_accepts_every_call() {
        let progress = Progress::new(10, 2);
        progress.update(5, &Logs::new());
        assert_eq!(progress.suspend(|| 7), 7);
        progress.finish();
    }
}
