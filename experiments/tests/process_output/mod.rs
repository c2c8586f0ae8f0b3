//! Checks on the output of a finished `train` process, shared by the test binaries that run it.

use std::process::Output;

/// Fails with the exit code and stderr unless the process succeeded.
pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The process's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
