pub mod synthetic_corpus;
