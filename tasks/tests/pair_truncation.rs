//! Sentence pairs are cut as BERT's `_truncate_seq_pair` cuts them, checked against the
//! cases `fixtures/pair_truncation/make.py` computed with an independent implementation of
//! the rule; the tokenizers crate's longest-first rule stays selectable.

use grove_tasks::text::{truncate_seq_pair, PairTruncation, WordPieceTokenizer};

const CASES: &str = include_str!("fixtures/pair_truncation/cases.json");

/// `[seq_length, len_a, len_b, kept_a, kept_b]` rows.
fn cases() -> Vec<[usize; 5]> {
    let document: serde_json::Value = serde_json::from_str(CASES).unwrap();
    serde_json::from_value(document["cases"].clone()).unwrap()
}

fn tokenizer() -> (tempfile::TempDir, WordPieceTokenizer) {
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("vocab.txt");
    std::fs::write(&vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\n").unwrap();
    let tokenizer = WordPieceTokenizer::from_vocab_file(vocab.to_str().unwrap(), true, "k");
    (dir, tokenizer.unwrap())
}

/// The numbers of `a` and `b` tokens a pair of `len_a` and `len_b` words keeps.
fn kept(
    tokenizer: &WordPieceTokenizer,
    lens: (usize, usize),
    seq: usize,
    rule: PairTruncation,
) -> (usize, usize) {
    let a = vec!["a"; lens.0].join(" ");
    let b = vec!["b"; lens.1].join(" ");
    let encoded = tokenizer.encode(&a, Some(&b), seq, rule).unwrap();
    let count = |id: u32| encoded.input_word_ids.iter().filter(|&&t| t == id).count();
    (count(4), count(5))
}

#[test]
fn pairs_keep_what_berts_rule_keeps() {
    let cases = cases();
    assert_eq!(cases.len(), 252);
    let (_dir, tokenizer) = tokenizer();
    for [seq_length, len_a, len_b, kept_a, kept_b] in cases {
        let mut a: Vec<u32> = (0..len_a as u32).collect();
        let mut b: Vec<u32> = (100..100 + len_b as u32).collect();
        truncate_seq_pair(&mut a, &mut b, seq_length - 3);
        assert_eq!(
            (a.len(), b.len()),
            (kept_a, kept_b),
            "{seq_length} {len_a} {len_b}"
        );
        // The first tokens of each sequence are the ones kept.
        assert!(a.iter().copied().eq(0..kept_a as u32));
        let encoded = kept(&tokenizer, (len_a, len_b), seq_length, PairTruncation::Bert);
        assert_eq!(encoded, (kept_a, kept_b), "{seq_length} {len_a} {len_b}");
    }
}

#[test]
fn the_issue_example_differs_between_the_two_rules() {
    let (_dir, tokenizer) = tokenizer();
    assert_eq!(kept(&tokenizer, (23, 16), 16, PairTruncation::Bert), (7, 6));
    assert_eq!(
        kept(&tokenizer, (23, 16), 16, PairTruncation::Huggingface),
        (6, 7)
    );
}
