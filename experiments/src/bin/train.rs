//! `train`: run a registered Grove experiment. See README.md for the flags.

/// candle allocates every op's output afresh; a reusing allocator avoids the page faults of
/// fresh memory, which cost more than the arithmetic on small models (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    grove_trainers::instrumentation::mark_process_start();
    grove_experiments::allocator::keep_freed_memory();
    grove_experiments::cli::main()
}
