//! Sentence prediction examples: TSV or JSONL files tokenized with WordPiece, or synthetic
//! pairs from the masked LM corpus; batched as `input_word_ids`, `input_mask`,
//! `input_type_ids` (u32) and `label` (u32 classes or f32 scores).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use grove_core::data::{Batch, BatchSource};
use grove_core::{Error, Result};

use super::config::{LabelType, SentenceDataConfig, SentenceFileType};
use crate::data::file_patterns::expand_input_path;
use crate::data::order::Sampler;
use crate::data::rows::stack_rows;
use crate::data::synthetic_corpus::{SyntheticCorpus, SyntheticCorpusSpec};
use crate::text::{Encoded, WordPieceTokenizer};

/// One tokenized example.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceExample {
    /// The token arrays.
    pub encoded: Encoded,
    /// The class index or the score.
    pub label: f32,
}

/// Reads and tokenizes every example of the files `data` names (`key`: its config key);
/// labels of classification tasks must be below `num_classes`.
pub fn read_text_examples(
    data: &SentenceDataConfig,
    key: &str,
    num_classes: usize,
) -> Result<Vec<SentenceExample>> {
    let tokenizer = WordPieceTokenizer::from_vocab_file(&data.vocab_file, data.lower_case, key)?;
    let mut examples = Vec::new();
    for (file, rows) in file_rows(data, key)? {
        for (line, fields, label) in rows {
            let at = |why: String| Error::Data(format!("{}:{line}: {why}", file.display()));
            let label = parse_label(&label, data.label_type, num_classes).map_err(at)?;
            let b = fields.get(1).map(String::as_str);
            let encoded = tokenizer.encode(&fields[0], b, data.seq_length, data.truncation)?;
            examples.push(SentenceExample { encoded, label });
        }
    }
    if examples.is_empty() {
        return Err(Error::Data(format!(
            "{key}.input_path = {:?}: the files hold no example",
            data.input_path
        )));
    }
    Ok(examples)
}

/// The examples of the files `data` names, counted without tokenizing (for epochs).
pub fn count_rows(data: &SentenceDataConfig, key: &str) -> Result<usize> {
    let rows: usize = file_rows(data, key)?
        .iter()
        .map(|(_, rows)| rows.len())
        .sum();
    if rows == 0 {
        return Err(Error::Data(format!(
            "{key}.input_path = {:?}: the files hold no example",
            data.input_path
        )));
    }
    Ok(rows)
}

/// One row: its 1-based line, its text fields and its label text.
type Row = (usize, Vec<String>, String);

/// The rows of each file `data` names, in order.
fn file_rows(data: &SentenceDataConfig, key: &str) -> Result<Vec<(PathBuf, Vec<Row>)>> {
    expand_input_path(&data.input_path, key)?
        .into_iter()
        .map(|file| {
            let text =
                std::fs::read_to_string(&file).map_err(|e| Error::io("cannot read", &file, e))?;
            let rows = if data.file_type == SentenceFileType::Jsonl {
                jsonl_rows(&file, &text, data)?
            } else {
                tsv_rows(&file, &text, data)?
            };
            Ok((file, rows))
        })
        .collect()
}

fn tsv_rows(file: &Path, text: &str, data: &SentenceDataConfig) -> Result<Vec<Row>> {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let columns: Vec<&str> = header.split('\t').collect();
    let column = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or_else(|| {
            Error::Data(format!(
                "{}:1: the header has no column `{name}` (it has {}); set text_fields and \
                 label_field to column names",
                file.display(),
                columns.join(", ")
            ))
        })
    };
    let text_columns: Vec<usize> = data
        .text_fields
        .iter()
        .map(|f| column(f))
        .collect::<Result<_>>()?;
    let label_column = column(&data.label_field)?;
    let mut rows = Vec::new();
    for (index, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split('\t').collect();
        let cell = |c: usize| {
            cells.get(c).map(|s| s.to_string()).ok_or_else(|| {
                Error::Data(format!(
                    "{}:{}: {} columns where the header has {}",
                    file.display(),
                    index + 1,
                    cells.len(),
                    columns.len()
                ))
            })
        };
        let fields = text_columns
            .iter()
            .map(|&c| cell(c))
            .collect::<Result<_>>()?;
        rows.push((index + 1, fields, cell(label_column)?));
    }
    Ok(rows)
}

fn jsonl_rows(file: &Path, text: &str, data: &SentenceDataConfig) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = |why: String| Error::Data(format!("{}:{}: {why}", file.display(), index + 1));
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| at(format!("not a JSON object ({e})")))?;
        let field = |name: &str| match value.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(at(format!(
                "field `{name}` is {other}, not a string or number"
            ))),
            None => Err(at(format!("field `{name}` is missing"))),
        };
        let fields = data
            .text_fields
            .iter()
            .map(|f| field(f))
            .collect::<Result<_>>()?;
        rows.push((index + 1, fields, field(&data.label_field)?));
    }
    Ok(rows)
}

fn parse_label(
    text: &str,
    label_type: LabelType,
    num_classes: usize,
) -> std::result::Result<f32, String> {
    let text = text.trim();
    match label_type {
        LabelType::Float => text
            .parse::<f32>()
            .map_err(|_| format!("label {text:?} is not a number")),
        LabelType::Int => match text.parse::<usize>() {
            Ok(class) if class < num_classes => Ok(class as f32),
            _ => Err(format!(
                "label {text:?} is not a class index below task.model.num_classes = {num_classes}"
            )),
        },
    }
}

/// Synthetic pairs: `[CLS] A [SEP] B [SEP]` from the masked LM corpus of `seed`, unmasked;
/// label 1 when B is a random chain rather than A's continuation (about half the pairs), so
/// a model must tell whether B continues A's topic. Examples `first..first + count`.
pub fn synthetic_pairs(
    seed: u64,
    first: usize,
    count: usize,
    seq_length: usize,
    vocab_size: usize,
) -> Result<Vec<SentenceExample>> {
    let corpus = SyntheticCorpus::new(SyntheticCorpusSpec {
        seed,
        num_examples: first + count,
        seq_length,
        max_predictions_per_seq: 1,
        vocab_size,
        use_next_sentence_label: true,
    })
    .map_err(|e| Error::Config(format!("task synthetic pairs: {e}")))?;
    Ok((first..first + count)
        .map(|index| {
            let mut e = corpus.example(index);
            for (&position, (&id, &weight)) in e
                .masked_lm_positions
                .iter()
                .zip(e.masked_lm_ids.iter().zip(&e.masked_lm_weights))
            {
                if weight > 0.0 {
                    e.input_word_ids[position as usize] = id;
                }
            }
            SentenceExample {
                encoded: Encoded {
                    input_word_ids: e.input_word_ids,
                    input_mask: e.input_mask,
                    input_type_ids: e.input_type_ids,
                },
                label: e.next_sentence_label as f32,
            }
        })
        .collect())
}

/// Batches of examples in a [`Sampler`]'s order.
pub struct SentenceSource {
    examples: Arc<Vec<SentenceExample>>,
    sampler: Sampler,
    batch_size: usize,
    drop_remainder: bool,
    regression: bool,
}

impl SentenceSource {
    /// A source over `examples`; `regression` makes `label` f32 scores.
    pub fn new(
        examples: Arc<Vec<SentenceExample>>,
        sampler: Sampler,
        data: &SentenceDataConfig,
        regression: bool,
    ) -> Self {
        SentenceSource {
            examples,
            sampler,
            batch_size: data.global_batch_size,
            drop_remainder: data.drop_remainder,
            regression,
        }
    }
}

impl BatchSource for SentenceSource {
    fn next_batch(&mut self) -> Option<Result<Batch>> {
        let indices = self
            .sampler
            .next_indices(self.batch_size, self.drop_remainder);
        if indices.is_empty() {
            return None;
        }
        let rows: Vec<&SentenceExample> = indices.iter().map(|&i| &self.examples[i]).collect();
        let batch = (|| {
            let mut batch = Batch::new();
            let ids = stack_rows(&rows, |r| &r.encoded.input_word_ids)?;
            batch.insert("input_word_ids", ids);
            batch.insert("input_mask", stack_rows(&rows, |r| &r.encoded.input_mask)?);
            let type_ids = stack_rows(&rows, |r| &r.encoded.input_type_ids)?;
            batch.insert("input_type_ids", type_ids);
            let labels = rows.iter().map(|r| r.label);
            let label = if self.regression {
                Tensor::from_vec(labels.collect::<Vec<f32>>(), rows.len(), &Device::Cpu)?
            } else {
                let classes: Vec<u32> = labels.map(|l| l as u32).collect();
                Tensor::from_vec(classes, rows.len(), &Device::Cpu)?
            };
            batch.insert("label", label);
            Ok(batch)
        })();
        Some(batch)
    }

    fn is_endless(&self) -> bool {
        self.sampler.is_endless()
    }
}
