//! The `train` command line: parse flags, resolve the experiment's config, run it, and map the
//! outcome to an exit code. A user's own binary registers its tasks and experiments, then calls
//! [`main`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, ValueEnum};
use grove_core::config::{explain, resolve_explained, ConfigSources};
use grove_core::registry::{experiment_names, get_experiment};
use grove_core::runtime::set_compute_threads;
use grove_orbit::{ErrorKind, Preemption};
use grove_trainers::{
    export_model, run_experiment, Error, EvalCheckpoint, ExportTarget, Mode, RunOptions,
};

/// Exit code of a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit code of a run that failed on its own (e.g. a NaN loss, a full disk).
pub const EXIT_RUN_FAILED: u8 = 1;
/// Exit code of input the user can fix: flags, config, data or checkpoint files.
pub const EXIT_USER_ERROR: u8 = 2;
/// Exit code of a run stopped by SIGTERM / SIGINT after saving a checkpoint: rerun to resume
/// (`EX_TEMPFAIL`).
pub const EXIT_PREEMPTED: u8 = 75;

/// Train, evaluate and checkpoint a registered Grove experiment.
#[derive(Debug, Parser)]
#[command(name = "train", rename_all = "snake_case", version)]
pub struct Cli {
    /// Registered experiment name, e.g. bert/local (see --list_experiments); with --sweep it
    /// may come from the sweep file instead.
    #[arg(long, required_unless_present_any = ["list_experiments", "sweep", "sweep_status"])]
    pub experiment: Option<String>,
    /// What to run.
    #[arg(
        long,
        value_enum,
        required_unless_present_any = ["list_experiments", "print_config", "sweep", "sweep_status"],
        conflicts_with_all = ["sweep", "sweep_status"]
    )]
    pub mode: Option<ModeArg>,
    /// Directory of checkpoints, summaries and params.yaml (with --sweep: the sweep's
    /// directory, holding a model_dir per trial).
    #[arg(long, required_unless_present_any = ["list_experiments", "print_config"])]
    pub model_dir: Option<PathBuf>,
    /// YAML file overriding the experiment's defaults; repeatable, applied in order.
    #[arg(long, action = ArgAction::Append)]
    pub config_file: Vec<PathBuf>,
    /// Overrides applied after the config files: `a.b=1,c.d=[1,2]` or a YAML mapping;
    /// repeatable, applied in order.
    #[arg(long, action = ArgAction::Append)]
    pub params_override: Vec<String>,
    /// Print the registered experiment names and exit.
    #[arg(long)]
    pub list_experiments: bool,
    /// Print the resolved config, each value with the layer that set it, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// With --mode=eval: `latest` (default), `all` retained checkpoints in step order, or the
    /// path of one checkpoint directory; with --mode=export: `latest` or a path.
    #[arg(long)]
    pub eval_checkpoint: Option<String>,
    /// With --mode=export: `huggingface` (config.json, model.safetensors under Hugging Face's
    /// names, the vocabulary) or `grove` (weights and params.yaml for task.init_checkpoint).
    #[arg(long, value_enum)]
    pub export_format: Option<ExportFormatArg>,
    /// Continue a model_dir whose params.yaml differs from this config in more than cadences.
    #[arg(long)]
    pub allow_config_change: bool,
    /// Run the hyperparameter sweep this YAML file describes: trials in
    /// `<model_dir>/trial-<n>/`, the ledger in `<model_dir>/trials.jsonl`; the same command
    /// continues an interrupted sweep.
    #[arg(long, conflicts_with_all = ["print_config", "eval_checkpoint", "allow_config_change"])]
    pub sweep: Option<PathBuf>,
    /// Print the standing of the sweep in --model_dir (safe while it runs) and exit.
    #[arg(long, conflicts_with = "sweep")]
    pub sweep_status: bool,
    /// Trailing `key=value` overrides, applied after every --params_override.
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ModeArg {
    /// Train to trainer.train_steps.
    Train,
    /// Evaluate the latest checkpoint of --model_dir once.
    Eval,
    /// Train, evaluating every trainer.validation_interval steps and at the end.
    TrainAndEval,
    /// Train to trainer.train_steps, then evaluate once.
    TrainAndPostEval,
    /// Evaluate each new checkpoint a concurrent trainer writes, until the final one.
    ContinuousEval,
    /// Write the latest checkpoint's model to <model_dir>/export/<step>/ (--export_format).
    Export,
}

impl ModeArg {
    /// The mode `run_experiment` runs, or `None` for `export`.
    fn run_mode(self) -> Option<Mode> {
        match self {
            ModeArg::Train => Some(Mode::Train),
            ModeArg::Eval => Some(Mode::Eval),
            ModeArg::TrainAndEval => Some(Mode::TrainAndEval),
            ModeArg::TrainAndPostEval => Some(Mode::TrainAndPostEval),
            ModeArg::ContinuousEval => Some(Mode::ContinuousEval),
            ModeArg::Export => None,
        }
    }
}

/// `--export_format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ExportFormatArg {
    /// Hugging Face transformers (the default).
    Huggingface,
    /// Grove's own weights and resolved config.
    Grove,
}

impl From<ExportFormatArg> for ExportTarget {
    fn from(format: ExportFormatArg) -> ExportTarget {
        match format {
            ExportFormatArg::Huggingface => ExportTarget::Huggingface,
            ExportFormatArg::Grove => ExportTarget::Grove,
        }
    }
}

/// Runs the command line of this process: registers Grove's own tasks and experiments
/// (once), parses `std::env::args`, runs, and returns the exit code.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Like [`main`] with explicit arguments (the first is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                EXIT_USER_ERROR
            } else {
                EXIT_OK
            });
        }
    };
    crate::logging::init();
    let code = match crate::register().map_err(Error::from) {
        Err(e) => report(&e, e.kind()),
        Ok(()) => match (&cli.sweep, cli.sweep_status) {
            (Some(file), _) => outcome(crate::sweeps::run(&cli, file)),
            (None, true) => outcome(crate::sweeps::status(&cli)),
            (None, false) => match execute(&cli) {
                Ok(()) => EXIT_OK,
                Err(e) => report(&e, e.kind()),
            },
        },
    };
    crate::workers::leave(code, matches!(code, EXIT_OK | EXIT_PREEMPTED));
    ExitCode::from(code)
}

fn execute(cli: &Cli) -> Result<(), Error> {
    if cli.list_experiments {
        for name in experiment_names() {
            println!("{name}");
        }
        return Ok(());
    }
    let Some(name) = &cli.experiment else {
        unreachable!("clap requires --experiment unless --list_experiments is given");
    };
    let defaults = get_experiment(name)?;
    let sources = ConfigSources {
        config_files: cli.config_file.clone(),
        params_overrides: cli.params_override.clone(),
        trailing_overrides: cli.overrides.clone(),
        environment: std::env::vars().collect(),
    };
    let resolved = resolve_explained(&defaults, &sources)?;
    if cli.print_config {
        print!("{}", explain(&resolved));
        return Ok(());
    }
    let (Some(mode), Some(model_dir)) = (cli.mode, &cli.model_dir) else {
        unreachable!("clap requires --mode and --model_dir unless --print_config is given");
    };
    let config = resolved.config;
    crate::workers::join_if_asked(&config.runtime)?;
    set_compute_threads(config.runtime.num_threads);
    tracing::info!(
        "experiment {name} | mode {:?} | model_dir {}",
        mode,
        model_dir.display()
    );
    let checkpoint = eval_checkpoint(cli.eval_checkpoint.as_deref(), mode)?;
    let Some(run_mode) = mode.run_mode() else {
        let target = cli
            .export_format
            .map(ExportTarget::from)
            .unwrap_or_default();
        export_model(&config, model_dir, &checkpoint, target)?;
        return Ok(());
    };
    if cli.export_format.is_some() {
        return Err(grove_core::Error::Config(
            "--export_format applies to --mode=export only".to_string(),
        )
        .into());
    }
    let options = RunOptions {
        allow_config_change: cli.allow_config_change,
        eval_checkpoint: checkpoint,
        preemption: Preemption::on_signals()?,
    };
    let logs = run_experiment(&config, run_mode, model_dir, options)?;
    if !logs.is_empty() {
        tracing::info!("final evaluation: {logs:?}");
    }
    Ok(())
}

/// `--eval_checkpoint`, which only `--mode=eval` and `--mode=export` take.
fn eval_checkpoint(flag: Option<&str>, mode: ModeArg) -> Result<EvalCheckpoint, grove_core::Error> {
    match (flag, mode) {
        (None, _) => Ok(EvalCheckpoint::Latest),
        (Some(_), mode) if !matches!(mode, ModeArg::Eval | ModeArg::Export) => {
            Err(grove_core::Error::Config(
                "--eval_checkpoint applies to --mode=eval and --mode=export only".to_string(),
            ))
        }
        (Some("latest"), _) => Ok(EvalCheckpoint::Latest),
        (Some("all"), _) => Ok(EvalCheckpoint::All),
        (Some(path), _) => Ok(EvalCheckpoint::Path(PathBuf::from(path))),
    }
}

/// The exit code of a sweep command's outcome, its error reported.
fn outcome(result: Result<(), grove_sweep::SweepError>) -> u8 {
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e, e.kind()),
    }
}

/// Prints the error (first line of each cause) and returns the exit code of its kind.
fn report(error: &(dyn std::error::Error + 'static), kind: ErrorKind) -> u8 {
    let mut message = format!("{}error:", crate::workers::error_prefix());
    let causes = std::iter::successors(Some(error), |e| e.source());
    for (depth, cause) in causes.enumerate() {
        let text = cause.to_string();
        // candle appends a backtrace to its messages when RUST_BACKTRACE is set.
        let text = text.split("\n   0:").next().unwrap_or(&text).trim_end();
        if depth > 0 && message.contains(text) {
            continue;
        }
        message.push_str(if depth == 0 { " " } else { "\n  caused by: " });
        message.push_str(text);
    }
    eprintln!("{message}");
    match kind {
        ErrorKind::Preempted => EXIT_PREEMPTED,
        ErrorKind::UserInput => EXIT_USER_ERROR,
        ErrorKind::Run => EXIT_RUN_FAILED,
    }
}
