//! Text processing: BERT's WordPiece tokenization.

pub mod wordpiece;

pub use wordpiece::{Encoded, SpecialIds, WordPieceTokenizer};
