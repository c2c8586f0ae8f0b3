//! BERT's tokenizer from a WordPiece `vocab_file` (one token per line): text cleaning, CJK
//! and punctuation splitting, optional lowercasing with accent stripping, greedy longest-match
//! WordPiece with `##` continuations, then `[CLS] a [SEP] (b [SEP])`, pair truncation by
//! BERT's rule or the `tokenizers` crate's ([`PairTruncation`]) and padding to `seq_length`.
//! Built on the `tokenizers` crate (already compiled as a candle dependency).

use std::path::Path;

use grove_core::{Error, Result};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

/// How a sentence pair longer than `seq_length` is cut (`truncation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairTruncation {
    /// BERT's `_truncate_seq_pair` (Model Garden's `classifier_data_lib`): drop the last token
    /// of the longer sequence, one at a time, the second sequence's on ties.
    #[default]
    Bert,
    /// The `tokenizers` crate's `LongestFirst`, as Hugging Face pipelines cut pairs.
    Huggingface,
}

/// Cuts `a` and `b` to `max_tokens` together by BERT's `_truncate_seq_pair`.
pub fn truncate_seq_pair(a: &mut Vec<u32>, b: &mut Vec<u32>, max_tokens: usize) {
    while a.len() + b.len() > max_tokens {
        if a.len() > b.len() {
            a.pop();
        } else {
            b.pop();
        }
    }
}

/// The special tokens a BERT vocabulary must hold.
const SPECIAL_TOKENS: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];

/// One encoded example, `seq_length` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids.
    pub input_word_ids: Vec<u32>,
    /// 1 for tokens, 0 for padding.
    pub input_mask: Vec<u32>,
    /// 0 for `[CLS] a [SEP]`, 1 for `b [SEP]`, 0 for padding.
    pub input_type_ids: Vec<u32>,
}

/// A BERT WordPiece tokenizer.
pub struct WordPieceTokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
    special_ids: SpecialIds,
}

/// The ids of BERT's special tokens in a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// `[PAD]`.
    pub pad: u32,
    /// `[UNK]`.
    pub unk: u32,
    /// `[CLS]`.
    pub cls: u32,
    /// `[SEP]`.
    pub sep: u32,
    /// `[MASK]`, when the vocabulary has one (pretraining needs it).
    pub mask: Option<u32>,
}

impl WordPieceTokenizer {
    /// Loads `vocab_file` (the config key `key` names it in errors); `lower_case` lowercases
    /// and strips accents first, as uncased BERT models expect.
    pub fn from_vocab_file(vocab_file: &str, lower_case: bool, key: &str) -> Result<Self> {
        if vocab_file.is_empty() {
            return Err(Error::Config(format!(
                "{key}.vocab_file is empty: give the WordPiece vocabulary (one token per line)"
            )));
        }
        if !Path::new(vocab_file).is_file() {
            return Err(Error::Data(format!(
                "{key}.vocab_file = {vocab_file:?}: no such file"
            )));
        }
        let model = WordPiece::from_file(vocab_file)
            .unk_token("[UNK]".to_string())
            .build()
            .map_err(|e| {
                Error::Data(format!(
                    "{key}.vocab_file = {vocab_file:?}: cannot be read ({e})"
                ))
            })?;
        let mut tokenizer = Tokenizer::new(model);
        let id = |token: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| {
                Error::Data(format!(
                    "{key}.vocab_file = {vocab_file:?} has no {token} token; a BERT vocabulary \
                     holds {}",
                    SPECIAL_TOKENS.join(", ")
                ))
            })
        };
        let ids: Vec<u32> = SPECIAL_TOKENS
            .iter()
            .map(|t| id(t))
            .collect::<Result<_>>()?;
        let (pad_id, cls_id, sep_id) = (ids[0], ids[2], ids[3]);
        let special_ids = SpecialIds {
            pad: pad_id,
            unk: ids[1],
            cls: cls_id,
            sep: sep_id,
            mask: tokenizer.token_to_id("[MASK]"),
        };
        let normalizer = BertNormalizer::new(true, true, Some(lower_case), lower_case);
        tokenizer
            .with_normalizer(Some(normalizer))
            .map_err(|e| Error::Run(format!("tokenizer setup: {e}")))?;
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        tokenizer.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".to_string(), sep_id),
            ("[CLS]".to_string(), cls_id),
        )));
        Ok(WordPieceTokenizer {
            tokenizer,
            pad_id,
            special_ids,
        })
    }

    /// The number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(false)
    }

    /// The ids of the special tokens.
    pub fn special_ids(&self) -> SpecialIds {
        self.special_ids
    }

    /// The WordPiece ids of `text`, without special tokens.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Data(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The WordPiece tokens of `text` (no special tokens), for inspection.
    pub fn tokenize(&self, text: &str) -> Result<Vec<String>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Data(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_tokens().to_vec())
    }

    /// `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, cut to `seq_length` (at least 3, or 4
    /// with a pair; a single sequence loses its end, a pair is cut by `truncation`) and
    /// padded to it.
    pub fn encode(
        &self,
        a: &str,
        b: Option<&str>,
        seq_length: usize,
        truncation: PairTruncation,
    ) -> Result<Encoded> {
        match truncation {
            PairTruncation::Bert => self.encode_as_bert(a, b, seq_length),
            PairTruncation::Huggingface => self.encode_longest_first(a, b, seq_length),
        }
    }

    /// [`Self::encode`] with BERT's `_truncate_seq_pair`.
    fn encode_as_bert(&self, a: &str, b: Option<&str>, seq_length: usize) -> Result<Encoded> {
        let specials = if b.is_some() { 3 } else { 2 };
        if seq_length < specials + 1 {
            return Err(Error::Config(format!(
                "seq_length = {seq_length} leaves no room for tokens beside [CLS] and [SEP]"
            )));
        }
        let mut a_ids = self.token_ids(a)?;
        let mut b_ids = b
            .map(|b| self.token_ids(b))
            .transpose()?
            .unwrap_or_default();
        let room = seq_length - specials;
        if b.is_some() {
            truncate_seq_pair(&mut a_ids, &mut b_ids, room);
        } else {
            a_ids.truncate(room);
        }
        let (cls, sep) = (self.special_ids.cls, self.special_ids.sep);
        let mut ids = vec![cls];
        ids.extend(&a_ids);
        ids.push(sep);
        let first = ids.len();
        if b.is_some() {
            ids.extend(&b_ids);
            ids.push(sep);
        }
        let used = ids.len();
        let type_of = |i: usize| u32::from(i >= first && i < used);
        Ok(Encoded {
            input_type_ids: (0..seq_length).map(type_of).collect(),
            input_mask: (0..seq_length).map(|i| u32::from(i < used)).collect(),
            input_word_ids: ids
                .into_iter()
                .chain(std::iter::repeat(self.pad_id))
                .take(seq_length)
                .collect(),
        })
    }

    /// [`Self::encode`] with the `tokenizers` crate's longest-first truncation.
    fn encode_longest_first(&self, a: &str, b: Option<&str>, seq_length: usize) -> Result<Encoded> {
        let mut tokenizer = self.tokenizer.clone();
        let truncation = TruncationParams {
            max_length: seq_length,
            strategy: TruncationStrategy::LongestFirst,
            ..TruncationParams::default()
        };
        tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| Error::Config(format!("seq_length = {seq_length}: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(seq_length),
            pad_id: self.pad_id,
            pad_token: "[PAD]".to_string(),
            ..PaddingParams::default()
        }));
        let encoding = match b {
            Some(b) => tokenizer.encode((a, b), true),
            None => tokenizer.encode(a, true),
        }
        .map_err(|e| Error::Data(format!("cannot tokenize {a:?}: {e}")))?;
        Ok(Encoded {
            input_word_ids: encoding.get_ids().to_vec(),
            input_mask: encoding.get_attention_mask().to_vec(),
            input_type_ids: encoding.get_type_ids().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOCAB: &str =
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\nplay\n##ing\n##ed\n,\n.\ncafe\n";

    fn tokenizer(lower_case: bool) -> (tempfile::TempDir, WordPieceTokenizer) {
        let dir = tempfile::tempdir().unwrap();
        let vocab = dir.path().join("vocab.txt");
        std::fs::write(&vocab, VOCAB).unwrap();
        let t = WordPieceTokenizer::from_vocab_file(vocab.to_str().unwrap(), lower_case, "task.x");
        (dir, t.unwrap())
    }

    #[test]
    fn word_pieces_unknowns_case_accents_and_punctuation() {
        let (_dir, t) = tokenizer(true);
        assert_eq!(t.vocab_size(), 14);
        let tokens = t.tokenize("The cat, PLAYING; Café dog.").unwrap();
        assert_eq!(
            tokens,
            ["the", "cat", ",", "play", "##ing", "[UNK]", "cafe", "[UNK]", "."]
        );
        let (_dir, cased) = tokenizer(false);
        assert_eq!(
            cased.tokenize("The played").unwrap(),
            ["[UNK]", "play", "##ed"]
        );
    }

    #[test]
    fn pairs_are_framed_truncated_longest_first_and_padded() {
        let (_dir, t) = tokenizer(true);
        let single = t
            .encode("the cat sat", None, 8, PairTruncation::Bert)
            .unwrap();
        assert_eq!(single.input_word_ids, [2, 5, 6, 7, 3, 0, 0, 0]);
        assert_eq!(single.input_mask, [1, 1, 1, 1, 1, 0, 0, 0]);
        assert_eq!(single.input_type_ids, [0; 8]);
        // 3 + 2 tokens into 8 - 3 = 5 places fits; into 7 - 3 = 4 the longer side loses one.
        for rule in [PairTruncation::Bert, PairTruncation::Huggingface] {
            let pair = t.encode("the cat sat", Some("playing"), 7, rule).unwrap();
            assert_eq!(pair.input_word_ids, [2, 5, 6, 3, 8, 9, 3], "{rule:?}");
            assert_eq!(pair.input_type_ids, [0, 0, 0, 0, 1, 1, 1], "{rule:?}");
            assert_eq!(pair.input_mask, [1; 7], "{rule:?}");
            let padded = t.encode("the cat", Some("sat"), 8, rule).unwrap();
            assert_eq!(padded.input_word_ids, [2, 5, 6, 3, 7, 3, 0, 0], "{rule:?}");
            assert_eq!(padded.input_type_ids, [0, 0, 0, 0, 1, 1, 0, 0], "{rule:?}");
            assert_eq!(padded.input_mask, [1, 1, 1, 1, 1, 1, 0, 0], "{rule:?}");
        }
        // On a tie BERT cuts the second sequence, the tokenizers crate the first.
        let bert = t
            .encode("the cat", Some("sat cat"), 6, PairTruncation::Bert)
            .unwrap();
        assert_eq!(bert.input_word_ids, [2, 5, 6, 3, 7, 3]);
    }

    #[test]
    fn a_missing_or_incomplete_vocabulary_is_reported() {
        let message = |r: Result<WordPieceTokenizer>| r.err().unwrap().to_string();
        let missing = WordPieceTokenizer::from_vocab_file("/no/vocab.txt", true, "task.train_data");
        assert!(message(missing).contains("task.train_data.vocab_file"));
        let dir = tempfile::tempdir().unwrap();
        let vocab = dir.path().join("vocab.txt");
        std::fs::write(&vocab, "[PAD]\n[UNK]\nthe\n").unwrap();
        let incomplete = WordPieceTokenizer::from_vocab_file(vocab.to_str().unwrap(), true, "k");
        assert!(message(incomplete).contains("no [CLS] token"));
    }
}
