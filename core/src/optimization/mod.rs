//! Optimization: optimizers with named, checkpointable state (SGD, Adam, AdamW, LAMB, LARS, RMSprop,
//! Adagrad) and an optional moving average of the weights, learning-rate
//! schedules with warmup, and gradient clipping, following Model Garden's
//! `official/modeling/optimization` semantics. Configs live in
//! [`crate::config::optimization`].

pub mod clipping;
pub mod ema;
pub mod optimizer;
mod rule;
mod rules;
pub mod schedule;
mod slots;

#[cfg(test)]
mod tests;

pub use clipping::{clip_by_global_norm, clip_scale, global_norm};
pub use ema::MovingAverage;
pub use optimizer::{
    build_optimizer, build_optimizer_with_ema, named_vars, NamedVar, Optimizer, StateView,
};
pub use rules::WeightDecaySelection;
pub use schedule::{
    build_schedule, zero_learning_rate_from, LearningRateSchedule, LinearWarmup, PolynomialWarmup,
};
