//! The input pipeline: named-tensor [`Batch`]es that a [`BatchSource`] or a two-stage
//! [`StagedSource`] prepares ahead on background threads, delivered in order by a [`Dataset`]
//! that also reports where the stream stands ([`InputPosition`]) and how long the consumer
//! waited for it.

mod batch;
mod dataset;
mod shard;
mod source;

pub use batch::Batch;
pub use dataset::Dataset;
pub use shard::Shard;
pub use source::{BatchSource, InputPosition, InputStats, StagedSource};
