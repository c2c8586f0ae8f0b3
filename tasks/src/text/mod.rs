//! Text processing: BERT's WordPiece tokenization.

pub mod wordpiece;

pub use wordpiece::{truncate_seq_pair, Encoded, PairTruncation, SpecialIds, WordPieceTokenizer};
