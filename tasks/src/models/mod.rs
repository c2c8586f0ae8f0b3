//! Models: the BERT encoder, its pretraining heads and the small layers they are built from.
//!
//! Every model takes a [`candle_nn::VarBuilder`] from its caller and creates its weights through
//! it, so the caller decides the initial values (Grove's trainer passes a seeded backend) and the
//! variable names (the prefix). Forward passes take an optional seeded RNG for dropout: `None`
//! means inference, with no dropout and a deterministic result.

pub mod bert;
pub mod config;
pub mod huggingface;
pub mod huggingface_export;
pub mod layers;
pub mod pretrainer;

pub use bert::BertEncoder;
pub use config::{
    BertEncoderConfig, BertPretrainerConfig, ClsHeadConfig, EncoderConfig, EncoderFamily,
    BERT_ENCODER,
};
pub use huggingface::CheckpointFormat;
pub use layers::{dropout, Dense, Embedding, LayerNorm};
pub use pretrainer::{
    BertPretrainer, ClassificationHead, MaskedLmHead, PretrainerInputs, PretrainerLosses,
    PretrainerOutputs,
};
