//! `grove-bench`: one measurement per process, printed as one JSON line on stdout, for
//! `benches/harness.py` (which runs Grove, bare candle, PyTorch and TensorFlow interleaved).
//!
//! ```text
//! grove-bench mlp  --runner grove|task|candle --warmup 20 --steps 100 --threads 2
//! grove-bench bert --runner grove|task|candle --warmup 3 --steps 5 --threads 2
//! grove-bench checkpoint --dir /tmp --rounds 3
//! grove-bench overhead --steps 400
//! grove-bench pretraining-data --dir /tmp/pretrain --shards 64 --megabytes 4096
//! grove-bench input --input-path '/tmp/pretrain/*.tfrecord' --batches 500 --input-threads 1
//! ```

mod all_reduce;
mod bare_candle;
mod checkpoint;
mod grove_step;
mod input_throughput;
mod overhead;
mod pretraining_data;
mod task_loop;
mod workloads;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use grove_core::runtime::on_compute_threads;
use serde_json::json;

use workloads::Workload;

/// The allocator `train` uses (benches/README.md): freed buffers are reused, not faulted in
/// again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "grove-bench",
    about = "One Grove benchmark measurement as a JSON line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Training step time of the MLP workload.
    Mlp(StepArgs),
    /// Training step time of the BERT-mini masked LM workload.
    Bert(StepArgs),
    /// Checkpoint save (with fsync) and restore throughput.
    Checkpoint {
        /// Directory to write the checkpoints in (on the disk to measure).
        #[arg(long)]
        dir: PathBuf,
        /// Save/restore rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The Controller's overhead around the trainer's inner loop.
    Overhead {
        /// Training steps of bert/local.
        #[arg(long, default_value_t = 400)]
        steps: u64,
    },
    /// The gradient all-reduce of multi_worker_mirrored alone, as the workers of an MPI job
    /// (run under mpirun; needs the `mpi` feature); the chief prints.
    AllReduce {
        /// f32 values all-reduced per round (a model's parameter count: `grove-bench bert`
        /// reports BERT-mini's as `parameters`).
        #[arg(long)]
        elements: usize,
        /// Bucket size in MiB (0: the whole buffer in one call).
        #[arg(long, default_value_t = 25.0)]
        bucket_mb: f64,
        /// Untimed rounds first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Timed rounds.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Writes a Model Garden-format BERT pretraining TFRecord set (not committed data).
    PretrainingData {
        /// Directory to write the shards in.
        #[arg(long)]
        dir: PathBuf,
        /// Number of shard files.
        #[arg(long, default_value_t = 64)]
        shards: usize,
        /// Total size in MB (10^6 bytes).
        #[arg(long, default_value_t = 4096)]
        megabytes: u64,
        /// Tokens per sequence.
        #[arg(long, default_value_t = 128)]
        seq_length: usize,
        /// Masked positions per sequence.
        #[arg(long, default_value_t = 20)]
        max_predictions: usize,
    },
    /// Records per second of the masked LM input pipeline alone (BERT-mini shapes).
    Input {
        /// The pretraining files (paths or globs, comma separated).
        #[arg(long)]
        input_path: String,
        /// Untimed batches first (the first one fills the shuffle buffer).
        #[arg(long, default_value_t = 20)]
        warmup: u64,
        /// Timed batches.
        #[arg(long, default_value_t = 500)]
        batches: u64,
        /// `runtime.input_threads`: decoder threads beside the reader.
        #[arg(long, default_value_t = 1)]
        input_threads: usize,
        /// A config override (`key=value`, repeatable), e.g.
        /// `task.train_data.shuffle_buffer_size=10000`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Args)]
struct StepArgs {
    /// Grove (DefaultTrainer + Task) or a bare candle loop.
    #[arg(long, value_enum, default_value_t = Runner::Grove)]
    runner: Runner,
    /// Untimed steps first.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    steps: u64,
    /// Compute threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A config override (`key=value`, repeatable) after the workload's own, for A/B runs of
    /// a setting (e.g. `runtime.distribution_strategy=one_device`); Grove runners only.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Runner {
    /// The `DefaultTrainer` over the workload's Task, as a run trains.
    Grove,
    /// A bare loop over the same Task, with forward / backward / optimizer times.
    Task,
    /// A bare candle loop (candle-nn layers and AdamW).
    Candle,
}

fn main() -> anyhow::Result<()> {
    grove_experiments::allocator::keep_freed_memory();
    let cli = Cli::parse();
    let report = match cli.command {
        Command::Mlp(args) => step(Workload::Mlp, &args)?,
        Command::Bert(args) => step(Workload::Bert, &args)?,
        Command::Checkpoint { dir, rounds } => checkpoint::measure(&dir, rounds)?,
        Command::Overhead { steps } => on_compute_threads(|| overhead::measure(steps))?,
        Command::PretrainingData {
            dir,
            shards,
            megabytes,
            seq_length,
            max_predictions,
        } => pretraining_data::write(&dir, shards, megabytes, seq_length, max_predictions)?,
        Command::Input {
            input_path,
            warmup,
            batches,
            input_threads,
            overrides,
        } => input_throughput::measure(&input_path, warmup, batches, input_threads, &overrides)?,
        Command::AllReduce {
            elements,
            bucket_mb,
            warmup,
            rounds,
        } => all_reduce::measure(elements, bucket_mb, warmup, rounds)?,
    };
    let mut report = report;
    report["peak_rss_mb"] = json!(peak_rss_mb());
    // In a multi-worker job the chief reports (every worker measured the same steps).
    let chief = grove_collective::joined().is_none_or(|workers| workers.is_chief());
    if chief {
        println!("{report}");
    }
    grove_experiments::workers::leave(0, true);
    Ok(())
}

/// Times `workload`'s step with the chosen runner.
fn step(workload: Workload, args: &StepArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.steps > 0, "--steps must be positive");
    match args.runner {
        Runner::Candle => bare_candle::set_threads(args.threads),
        Runner::Grove | Runner::Task => grove_core::runtime::set_compute_threads(args.threads),
    }
    anyhow::ensure!(
        args.overrides.is_empty() || args.runner != Runner::Candle,
        "--set changes Grove's config; the candle runner has none"
    );
    let (warmup, steps) = (args.warmup, args.steps);
    let config = || workload.config(&args.overrides);
    grove_experiments::workers::join_if_asked(&config()?.runtime)?;
    let (name, mut report) = match args.runner {
        Runner::Grove => (
            "grove",
            on_compute_threads(|| grove_step::step_report(&config()?, warmup, steps))?,
        ),
        Runner::Task => (
            "grove_task",
            on_compute_threads(|| task_loop::measure(&config()?, warmup, steps))?,
        ),
        Runner::Candle => (
            "candle",
            json!({ "ms_per_step": bare_candle::step_ms(workload, warmup, steps)? }),
        ),
    };
    report["runner"] = json!(name);
    report["workload"] = json!(format!("{workload:?}").to_lowercase());
    report["threads"] = json!(grove_core::runtime::compute_threads());
    report["versions"] = json!({ "grove": env!("CARGO_PKG_VERSION"), "candle": "0.11.1" });
    Ok(report)
}

/// The process's peak resident set (`VmHWM` of /proc/self/status) in MB; 0 where unknown.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
