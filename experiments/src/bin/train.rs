//! `train`: run a registered Grove experiment. See README.md for the flags.

fn main() -> std::process::ExitCode {
    grove_experiments::cli::main()
}
