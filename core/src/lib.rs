//! grove-core: everything a Task author needs, and nothing about loops or files of a run.
//!
//! It owns the config system ([`config`]: typed configs with Model Garden's key names, layering
//! and strict checking), the registries ([`registry`]), the [`task::Task`] trait, optimization
//! ([`optimization`]: optimizers, learning-rate schedules, warmup, clipping), streaming
//! [`metrics`], the input pipeline ([`data`]), seeded random streams ([`rng`]), model variables
//! ([`vars`]), `init_checkpoint` loading ([`init_checkpoint`]), what a task says for
//! `--mode=export` ([`export`]), the progressive-training
//! policy trait tasks implement ([`progressive`]), the error kinds ([`error`]) and the
//! [`runtime`] device and compute threads. The fused kernels it builds on are grove-kernels'.
//! From grove-orbit it takes only what the
//! layers share, as Model Garden's core builds on Orbit: the [`grove_orbit::ErrorKind`] its
//! errors carry and the checkpoint index `init_checkpoint` asks for a model_dir's latest
//! checkpoint. It drives no loop, saves no checkpoint, writes no summary, and knows nothing of
//! data parallelism or any concrete task.

pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod init_checkpoint;
pub mod metrics;
pub mod optimization;
pub mod progressive;
pub mod registry;
pub mod rng;
pub mod runtime;
pub mod task;
pub mod vars;

pub use error::{Error, Result};
