//! Host-side data sources of the shipped tasks.

pub mod synthetic_corpus;
