//! Trial processes: each trial is the `train` program run on its own model_dir, its output
//! appended to `train.log` there. A trial runs in its own process group, so a terminal's
//! Ctrl-C reaches the sweep alone (which then stops each trial once, with SIGTERM), and it is
//! sent SIGTERM if the sweep dies, so no trial outlives its sweep: it saves a checkpoint and
//! exits, and the next run of the sweep resumes it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::error::{Result, SweepError};

/// The trial's output file in its model_dir.
pub const LOG_FILE: &str = "train.log";

/// `train`'s exit code for input the user can fix.
const EXIT_USER_ERROR: i32 = 2;
/// `train`'s exit code for a run stopped by a signal after a checkpoint.
const EXIT_PREEMPTED: i32 = 75;

/// How a trial process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It finished (trained to its end, or stopped by the pruner).
    Success,
    /// It stopped on a signal after saving a checkpoint.
    Preempted,
    /// It was killed by a signal.
    Killed(i32),
    /// It failed; `user_input` when `train` blamed its input.
    Failed {
        /// The exit code.
        code: i32,
        /// Whether the code is `train`'s code for bad input.
        user_input: bool,
    },
}

impl Exit {
    fn of(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(0), _) => Exit::Success,
            (Some(EXIT_PREEMPTED), _) => Exit::Preempted,
            (Some(code), _) => Exit::Failed {
                code,
                user_input: code == EXIT_USER_ERROR,
            },
            (None, Some(signal)) => Exit::Killed(signal),
            (None, None) => Exit::Killed(0),
        }
    }
}

/// A running trial.
#[derive(Debug)]
pub struct TrialProcess {
    /// The trial's number.
    pub trial: u64,
    /// Its model_dir.
    pub model_dir: PathBuf,
    child: Child,
}

impl TrialProcess {
    /// Starts `program args` for trial `trial`, its output appended to `model_dir/train.log`.
    pub fn start(
        program: &Path,
        args: &[OsString],
        trial: u64,
        model_dir: &Path,
    ) -> Result<TrialProcess> {
        let log_path = model_dir.join(LOG_FILE);
        let log = open_log(&log_path)?;
        let log_err = log
            .try_clone()
            .map_err(|e| SweepError::io("cannot open", &log_path, e))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The sweep may have died before the prctl: then stop at once.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| SweepError::io("cannot start the trial program", program, e))?;
        Ok(TrialProcess {
            trial,
            model_dir: model_dir.to_path_buf(),
            child,
        })
    }

    /// How the process ended, if it has.
    pub fn try_exit(&mut self) -> Result<Option<Exit>> {
        let status = self
            .child
            .try_wait()
            .map_err(|e| SweepError::io("cannot wait for the trial in", &self.model_dir, e))?;
        Ok(status.map(Exit::of))
    }

    /// Asks the trial to stop after its current step with a checkpoint (SIGTERM).
    pub fn stop(&self) {
        // SAFETY: kill(2) on the pid of a child this process has not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| SweepError::io("cannot open", path, e))
}

/// The last `error:` line (with what follows it) of a trial's `train.log`, for the ledger.
pub fn last_error(model_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(model_dir.join(LOG_FILE)).ok()?;
    let start = text.rfind("error:")?;
    let message: Vec<&str> = text[start..].lines().take(4).collect();
    Some(message.join(" ").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(process: &mut TrialProcess) -> Exit {
        loop {
            if let Some(exit) = process.try_exit().unwrap() {
                return exit;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn shell(script: &str, dir: &Path) -> TrialProcess {
        let args = [OsString::from("-c"), OsString::from(script)];
        TrialProcess::start(Path::new("/bin/sh"), &args, 0, dir).unwrap()
    }

    #[test]
    fn exits_are_classified_and_output_goes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(wait(&mut shell("echo hello", dir.path())), Exit::Success);
        assert_eq!(
            wait(&mut shell("echo 'error: bad key' >&2; exit 2", dir.path())),
            Exit::Failed {
                code: 2,
                user_input: true
            }
        );
        assert_eq!(wait(&mut shell("exit 75", dir.path())), Exit::Preempted);
        let mut sleeper = shell("sleep 30", dir.path());
        sleeper.stop();
        assert_eq!(wait(&mut sleeper), Exit::Killed(libc::SIGTERM));
        let log = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert!(log.contains("hello"));
        assert_eq!(last_error(dir.path()).unwrap(), "error: bad key");
    }
}
