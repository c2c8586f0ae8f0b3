//! Optimization: optimizers with named, checkpointable state (SGD, AdamW), learning-rate
//! schedules with warmup, and gradient clipping, following Model Garden's
//! `official/modeling/optimization` semantics. Configs live in
//! [`crate::config::optimization`].

pub mod adamw;
pub mod clipping;
pub mod optimizer;
pub mod schedule;
pub mod sgd;
mod slots;

#[cfg(test)]
mod tests;

pub use adamw::AdamWeightDecay;
pub use clipping::{clip_by_global_norm, clip_scale, global_norm};
pub use optimizer::{build_optimizer, named_vars, NamedVar, Optimizer};
pub use schedule::{
    build_schedule, ConstantLearningRate, LearningRateSchedule, LinearWarmup, PolynomialDecay,
    PolynomialWarmup,
};
pub use sgd::Sgd;
