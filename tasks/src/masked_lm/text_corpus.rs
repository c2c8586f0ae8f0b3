//! Masked LM examples from raw text: plain text files (one sentence per line, a blank line
//! between documents, as BERT's `create_pretraining_data.py` reads them) or JSONL files (one
//! document per line in its `text` field, sentences on its lines). Sentences are tokenized
//! with WordPiece, packed into `[CLS] A [SEP] B [SEP]` pairs of at most `seq_length` tokens
//! (B a random other document's text half of the time when next-sentence labels are used),
//! and masked as BERT does. Examples depend only on the files and the seed.

use std::path::Path;

use grove_core::rng::{stream_rng, Stream};
use grove_core::{Error, Result};
use rand::rngs::StdRng;
use rand::Rng;

use super::config::{MaskedLmDataConfig, MaskedLmFileType};
use crate::data::file_patterns::expand_input_path;
use crate::data::mlm_masking::Masking;
use crate::data::synthetic_corpus::MlmExample;
use crate::text::{SpecialIds, WordPieceTokenizer};

/// A document: its sentences as token ids.
type Document = Vec<Vec<u32>>;

/// Reads, tokenizes, packs and masks the text files `data` names (`key`: its config key);
/// `vocab_size` is the model's, which the vocabulary must fit in.
pub fn text_pretraining_examples(
    data: &MaskedLmDataConfig,
    vocab_size: usize,
    key: &str,
    seed: u64,
) -> Result<Vec<MlmExample>> {
    let tokenizer = WordPieceTokenizer::from_vocab_file(&data.vocab_file, data.lower_case, key)?;
    if tokenizer.vocab_size() > vocab_size {
        return Err(Error::Config(format!(
            "{key}.vocab_file has {} tokens but task.model.encoder.bert.vocab_size is {vocab_size}",
            tokenizer.vocab_size()
        )));
    }
    let special = tokenizer.special_ids();
    let mask_id = special.mask.ok_or_else(|| {
        Error::Data(format!(
            "{key}.vocab_file has no [MASK] token, which pretraining needs"
        ))
    })?;
    let mut documents = Vec::new();
    for file in expand_input_path(&data.input_path, key)? {
        documents.extend(read_documents(
            &file,
            data.file_type == MaskedLmFileType::Jsonl,
            &tokenizer,
        )?);
    }
    documents.retain(|d| !d.is_empty());
    if documents.is_empty() {
        return Err(Error::Data(format!(
            "{key}.input_path = {:?}: the files hold no text",
            data.input_path
        )));
    }
    let tokens = tokenizer.vocab_size() as u32;
    let specials = [special.pad, special.unk, special.cls, special.sep, mask_id];
    if tokens as usize <= specials.len() {
        return Err(Error::Data(format!(
            "{key}.vocab_file holds only special tokens"
        )));
    }
    let masking = Masking {
        seq_length: data.seq_length,
        max_predictions: data.max_predictions_per_seq,
        mask_id,
        pad_id: special.pad,
        is_candidate: &|t| t != special.cls && t != special.sep && t != special.pad,
        // A random regular token (never a special one).
        random_token: &|rng| loop {
            let token = rng.random_range(0..tokens);
            if !specials.contains(&token) {
                break token;
            }
        },
    };
    let packer = Packer {
        documents: &documents,
        max_tokens: data.seq_length - 3,
        next_sentence: data.use_next_sentence_label,
        special,
        masking,
    };
    let mut examples = Vec::new();
    for index in 0..documents.len() {
        let mut rng = stream_rng(seed, Stream::Data, index as u64);
        packer.pack(index, &mut rng, &mut examples);
    }
    Ok(examples)
}

fn read_documents(
    file: &Path,
    jsonl: bool,
    tokenizer: &WordPieceTokenizer,
) -> Result<Vec<Document>> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("cannot read", file, e))?;
    let mut documents = vec![Vec::new()];
    for (index, line) in text.lines().enumerate() {
        let at = |why: String| Error::Data(format!("{}:{}: {why}", file.display(), index + 1));
        if jsonl {
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| at(format!("not a JSON object ({e})")))?;
            let Some(text) = value.get("text").and_then(|t| t.as_str()) else {
                return Err(at("no string field `text`".to_string()));
            };
            let sentences = text.lines().filter(|s| !s.trim().is_empty());
            let document = sentences
                .map(|s| tokenizer.token_ids(s))
                .collect::<Result<_>>()?;
            documents.push(document);
        } else if line.trim().is_empty() {
            documents.push(Vec::new());
        } else {
            let sentence = tokenizer.token_ids(line)?;
            documents.last_mut().expect("never empty").push(sentence);
        }
    }
    Ok(documents)
}

/// Packs documents into masked sentence pairs.
struct Packer<'a> {
    documents: &'a [Document],
    max_tokens: usize,
    next_sentence: bool,
    special: SpecialIds,
    masking: Masking<'a>,
}

impl Packer<'_> {
    /// The examples of document `index`: its sentences grouped into chunks of about
    /// `max_tokens`, each split into A and B at a random sentence boundary.
    fn pack(&self, index: usize, rng: &mut StdRng, out: &mut Vec<MlmExample>) {
        let document = &self.documents[index];
        let mut chunk: Vec<&Vec<u32>> = Vec::new();
        let mut length = 0;
        for (i, sentence) in document.iter().enumerate() {
            chunk.push(sentence);
            length += sentence.len();
            if i + 1 == document.len() || length >= self.max_tokens {
                if let Some(example) = self.pair(index, &chunk, rng) {
                    out.push(example);
                }
                chunk.clear();
                length = 0;
            }
        }
    }

    fn pair(&self, index: usize, chunk: &[&Vec<u32>], rng: &mut StdRng) -> Option<MlmExample> {
        let split = if chunk.len() >= 2 {
            rng.random_range(1..chunk.len())
        } else {
            1
        };
        let mut a: Vec<u32> = chunk[..split]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        let random_next = self.next_sentence
            && self.documents.len() > 1
            && (chunk.len() == 1 || rng.random_bool(0.5));
        let (mut b, label) = if random_next {
            (
                self.random_segment(index, self.max_tokens.saturating_sub(a.len()).max(1), rng),
                1,
            )
        } else if chunk.len() >= 2 {
            (
                chunk[split..]
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect(),
                0,
            )
        } else {
            // One sentence and no other document: its two halves.
            let b = a.split_off(a.len() / 2);
            (b, 0)
        };
        if a.is_empty() || b.is_empty() {
            return None;
        }
        truncate_pair(&mut a, &mut b, self.max_tokens, rng);
        let (cls, sep) = (self.special.cls, self.special.sep);
        let mut tokens = Vec::with_capacity(a.len() + b.len() + 3);
        tokens.push(cls);
        tokens.extend(&a);
        tokens.push(sep);
        let mut type_ids = vec![0u32; tokens.len()];
        tokens.extend(&b);
        tokens.push(sep);
        type_ids.resize(tokens.len(), 1);
        Some(self.masking.apply(tokens, type_ids, label, rng))
    }

    /// About `target` tokens from a random sentence on of a random other document.
    fn random_segment(&self, index: usize, target: usize, rng: &mut StdRng) -> Vec<u32> {
        let mut other = rng.random_range(0..self.documents.len() - 1);
        if other >= index {
            other += 1;
        }
        let document = &self.documents[other];
        let start = rng.random_range(0..document.len());
        let mut segment = Vec::new();
        for sentence in &document[start..] {
            segment.extend(sentence);
            if segment.len() >= target {
                break;
            }
        }
        segment
    }
}

/// Trims the longer of `a` and `b`, from its front or back at random, until both fit in
/// `max_tokens` (BERT's `truncate_seq_pair`).
fn truncate_pair(a: &mut Vec<u32>, b: &mut Vec<u32>, max_tokens: usize, rng: &mut StdRng) {
    while a.len() + b.len() > max_tokens {
        let longer = if a.len() > b.len() { &mut *a } else { &mut *b };
        if rng.random_bool(0.5) {
            longer.remove(0);
        } else {
            longer.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grove_core::config::keyword;

    const VOCAB: &str =
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\ndog\nran\nhome\nfast\n.\n";

    fn config(dir: &Path, file_type: MaskedLmFileType, text: &str) -> MaskedLmDataConfig {
        let file = dir.join(format!("corpus.{}", keyword(&file_type)));
        std::fs::write(dir.join("vocab.txt"), VOCAB).unwrap();
        std::fs::write(&file, text).unwrap();
        MaskedLmDataConfig {
            input_path: file.display().to_string(),
            file_type,
            vocab_file: dir.join("vocab.txt").display().to_string(),
            seq_length: 16,
            max_predictions_per_seq: 3,
            ..MaskedLmDataConfig::default()
        }
    }

    const TEXT: &str = "the cat sat on the mat.\nthe dog ran home.\nthe cat ran fast.\n\n\
                        the dog sat.\nthe mat ran home fast.\n";

    #[test]
    fn documents_become_framed_masked_deterministic_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let data = config(dir.path(), MaskedLmFileType::Text, TEXT);
        let examples = text_pretraining_examples(&data, 100, "task.train_data", 3).unwrap();
        assert!(!examples.is_empty());
        for e in &examples {
            assert_eq!(e.input_word_ids.len(), 16);
            assert_eq!(e.input_word_ids[0], 2, "[CLS] first");
            let real = e.input_mask.iter().filter(|&&m| m == 1).count();
            assert_eq!(e.input_word_ids[real - 1], 3, "[SEP] last");
            assert_eq!(e.input_word_ids.iter().filter(|&&t| t == 3).count(), 2);
            let first_b = e.input_type_ids.iter().position(|&t| t == 1).unwrap();
            assert_eq!(e.input_word_ids[first_b - 1], 3, "A ends with [SEP]");
            for (p, w) in e.masked_lm_positions.iter().zip(&e.masked_lm_weights) {
                if *w > 0.0 {
                    assert!((*p as usize) < real && *p > 0);
                }
            }
            assert!(e.next_sentence_label <= 1);
        }
        assert_eq!(
            text_pretraining_examples(&data, 100, "k", 3).unwrap(),
            examples
        );
        assert_ne!(
            text_pretraining_examples(&data, 100, "k", 4).unwrap(),
            examples
        );
    }

    #[test]
    fn jsonl_documents_and_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = "{\"text\": \"the cat sat.\\nthe dog ran.\"}\n{\"text\": \"the mat.\"}\n";
        let data = config(dir.path(), MaskedLmFileType::Jsonl, jsonl);
        assert!(!text_pretraining_examples(&data, 100, "k", 1)
            .unwrap()
            .is_empty());
        let data = config(dir.path(), MaskedLmFileType::Jsonl, "{\"body\": \"x\"}\n");
        let message = text_pretraining_examples(&data, 100, "k", 1)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("corpus.jsonl:1: no string field `text`"),
            "{message}"
        );
        let data = config(dir.path(), MaskedLmFileType::Text, TEXT);
        let message = text_pretraining_examples(&data, 10, "task.train_data", 1)
            .unwrap_err()
            .to_string();
        assert!(message.contains("vocab_size is 10"), "{message}");
    }
}
