//! A seeded, finite, random-access synthetic masked-LM corpus with learnable structure.
//!
//! The "language" is a first-order Markov chain over the regular tokens. The regular tokens are
//! split into topics of [`TOPIC_SIZE`]; the transition table, derived from the seed alone, gives
//! each token [`NUM_SUCCESSORS`] likely successors within its topic, so a chain never leaves the
//! topic it starts in. A model first learns the topic from the bag of words around a masked
//! token (the loss falls from `ln(vocab_size)` towards `ln(TOPIC_SIZE)` within a few hundred
//! steps of a tiny model), then the transitions from its neighbours; and a random segment B
//! (next-sentence label 1) usually comes from another topic than A, so next-sentence prediction
//! is learnable too. Each example is `[CLS] A [SEP] B [SEP]` (then `[PAD]`s) and is masked the
//! way Google BERT's `create_pretraining_data.py` does. Example `i` depends only on
//! `(seed, i)`, so the corpus can be read in any order or resumed at any index. Everything is
//! host data (`Vec<u32>` / `Vec<f32>`); batching into tensors is the input pipeline's job.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::mlm_masking::Masking;

/// Id of the padding token.
pub const PAD_ID: u32 = 0;
/// Id of the classification token that starts every example.
pub const CLS_ID: u32 = 1;
/// Id of the separator token that ends each segment.
pub const SEP_ID: u32 = 2;
/// Id of the mask token.
pub const MASK_ID: u32 = 3;
/// First regular (non-special) token id.
pub const FIRST_REGULAR_ID: u32 = 4;
/// Number of likely successors of each token in the Markov chain.
pub const NUM_SUCCESSORS: usize = 3;
/// Regular tokens per topic (the last topic also takes the remainder).
pub const TOPIC_SIZE: usize = 16;
/// Probabilities of the likely successors, most likely first; the remaining mass
/// (`1 - sum`) goes to a uniformly random token of the same topic.
const SUCCESSOR_PROBS: [f64; NUM_SUCCESSORS] = [0.6, 0.25, 0.1];
/// Every example whose index is `PADDED_EVERY - 1` modulo `PADDED_EVERY` is shorter than
/// `seq_length`, so every stretch of the corpus has padded examples.
const PADDED_EVERY: usize = 8;
/// Stream tags that keep the table's rng apart from the examples' rngs.
const TABLE_STREAM: u64 = 0x7461_626c_6500_0001;
const EXAMPLE_STREAM: u64 = 0x6578_616d_706c_6501;

/// The parameters of a [`SyntheticCorpus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticCorpusSpec {
    /// Seed of the transition table and of every example.
    pub seed: u64,
    /// Number of examples (`len()`).
    pub num_examples: usize,
    /// Length of every token array, padding included; at least 5.
    pub seq_length: usize,
    /// Length of the prediction arrays; at least 1.
    pub max_predictions_per_seq: usize,
    /// Vocabulary size including the 4 special ids; at least 8.
    pub vocab_size: usize,
    /// Whether segment B is a random chain half of the time (label 1) instead of A's
    /// continuation (label 0). Without it, B always continues A and the label is 0.
    pub use_next_sentence_label: bool,
}

/// Why a [`SyntheticCorpusSpec`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntheticCorpusError {
    /// `seq_length` cannot hold `[CLS] A [SEP] B [SEP]` with non-empty segments.
    #[error("seq_length must be at least 5 ([CLS] a [SEP] b [SEP]), got {0}")]
    SeqLengthTooSmall(usize),
    /// `max_predictions_per_seq` is zero.
    #[error("max_predictions_per_seq must be at least 1, got 0")]
    NoPredictions,
    /// `vocab_size` leaves too few regular tokens.
    #[error("vocab_size must be at least 8 (4 special ids + 4 regular tokens), got {0}")]
    VocabTooSmall(usize),
    /// `vocab_size` does not fit the u32 token ids.
    #[error("vocab_size {0} does not fit in u32 token ids")]
    VocabTooLarge(usize),
}

/// One masked-LM training example, the fields of Model Garden's BERT pretraining input.
#[derive(Debug, Clone, PartialEq)]
pub struct MlmExample {
    /// Token ids after masking, `seq_length` long.
    pub input_word_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub input_mask: Vec<u32>,
    /// 0 for `[CLS] A [SEP]` (and padding), 1 for `B [SEP]`.
    pub input_type_ids: Vec<u32>,
    /// Positions chosen for prediction, ascending, padded with 0 to `max_predictions_per_seq`.
    pub masked_lm_positions: Vec<u32>,
    /// Original token ids at those positions, padded with 0.
    pub masked_lm_ids: Vec<u32>,
    /// 1.0 for real predictions, 0.0 for padding.
    pub masked_lm_weights: Vec<f32>,
    /// 0 if B continues A, 1 if B is a random chain.
    pub next_sentence_label: u32,
}

/// A seeded, finite, random-access synthetic masked-LM corpus.
#[derive(Debug, Clone)]
pub struct SyntheticCorpus {
    spec: SyntheticCorpusSpec,
    /// `successors[t - FIRST_REGULAR_ID]` lists the likely successors of regular token `t`.
    successors: Vec<[u32; NUM_SUCCESSORS]>,
}

/// The regular-token indices (0-based, before `FIRST_REGULAR_ID`) of the topic holding `index`.
fn topic_of(index: usize, num_regular: usize) -> std::ops::Range<usize> {
    let num_topics = (num_regular / TOPIC_SIZE).max(1);
    let topic = (index / TOPIC_SIZE).min(num_topics - 1);
    let start = topic * TOPIC_SIZE;
    let end = if topic + 1 == num_topics {
        num_regular
    } else {
        start + TOPIC_SIZE
    };
    start..end
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mixes a seed, a stream tag and an index into one rng seed.
fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    splitmix64(splitmix64(seed ^ stream) ^ splitmix64(index.wrapping_add(stream)))
}

impl SyntheticCorpus {
    /// Builds the corpus (and its transition table) from `spec`.
    pub fn new(spec: SyntheticCorpusSpec) -> Result<Self, SyntheticCorpusError> {
        if spec.seq_length < 5 {
            return Err(SyntheticCorpusError::SeqLengthTooSmall(spec.seq_length));
        }
        if spec.max_predictions_per_seq == 0 {
            return Err(SyntheticCorpusError::NoPredictions);
        }
        if spec.vocab_size < 8 {
            return Err(SyntheticCorpusError::VocabTooSmall(spec.vocab_size));
        }
        if u32::try_from(spec.vocab_size).is_err() {
            return Err(SyntheticCorpusError::VocabTooLarge(spec.vocab_size));
        }
        let num_regular = spec.vocab_size - FIRST_REGULAR_ID as usize;
        let mut rng = StdRng::seed_from_u64(mix(spec.seed, TABLE_STREAM, 0));
        let successors = (0..num_regular)
            .map(|index| {
                let topic = topic_of(index, num_regular);
                let picks = sample(&mut rng, topic.len(), NUM_SUCCESSORS);
                let mut row = [0u32; NUM_SUCCESSORS];
                for (slot, pick) in row.iter_mut().zip(picks) {
                    *slot = FIRST_REGULAR_ID + (topic.start + pick) as u32;
                }
                row
            })
            .collect();
        Ok(Self { spec, successors })
    }

    /// The spec the corpus was built from.
    pub fn spec(&self) -> &SyntheticCorpusSpec {
        &self.spec
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.spec.num_examples
    }

    /// Whether the corpus has no examples.
    pub fn is_empty(&self) -> bool {
        self.spec.num_examples == 0
    }

    /// The likely successors of regular token `token`, most likely first (`None` for special
    /// or out-of-range ids). Their probabilities are 0.6, 0.25 and 0.1; the remaining 0.05 goes
    /// to a uniformly random token of the same topic.
    pub fn likely_successors(&self, token: u32) -> Option<&[u32; NUM_SUCCESSORS]> {
        let idx = token.checked_sub(FIRST_REGULAR_ID)?;
        self.successors.get(idx as usize)
    }

    /// Example `index`, a pure function of `(seed, index)`.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn example(&self, index: usize) -> MlmExample {
        assert!(
            index < self.len(),
            "example index {index} out of range for a corpus of {} examples",
            self.len()
        );
        let mut rng = StdRng::seed_from_u64(mix(self.spec.seed, EXAMPLE_STREAM, index as u64));
        let (tokens, type_ids, label) = self.sentence_pair(index, &mut rng);
        self.finish(tokens, type_ids, label, &mut rng)
    }

    /// A uniformly random regular token.
    fn random_token(&self, rng: &mut StdRng) -> u32 {
        FIRST_REGULAR_ID + rng.random_range(0..self.successors.len() as u32)
    }

    /// The token after `prev` in the Markov chain.
    fn next_token(&self, prev: u32, rng: &mut StdRng) -> u32 {
        let row = &self.successors[(prev - FIRST_REGULAR_ID) as usize];
        let mut r: f64 = rng.random();
        for (succ, p) in row.iter().zip(SUCCESSOR_PROBS) {
            if r < p {
                return *succ;
            }
            r -= p;
        }
        let topic = topic_of((prev - FIRST_REGULAR_ID) as usize, self.successors.len());
        FIRST_REGULAR_ID + rng.random_range(topic.start as u32..topic.end as u32)
    }

    /// Appends `len` tokens of the chain continuing from `prev` (or from a random start).
    fn extend_chain(
        &self,
        out: &mut Vec<u32>,
        mut prev: Option<u32>,
        len: usize,
        rng: &mut StdRng,
    ) {
        for _ in 0..len {
            let token = match prev {
                Some(p) => self.next_token(p, rng),
                None => self.random_token(rng),
            };
            out.push(token);
            prev = Some(token);
        }
    }

    /// Draws `[CLS] A [SEP] B [SEP]` (unpadded, unmasked), its type ids and the NSP label.
    fn sentence_pair(&self, index: usize, rng: &mut StdRng) -> (Vec<u32>, Vec<u32>, u32) {
        let seq_length = self.spec.seq_length;
        let total = if index % PADDED_EVERY == PADDED_EVERY - 1 && seq_length > 5 {
            rng.random_range(5..seq_length)
        } else {
            seq_length
        };
        let content = total - 3;
        let len_a = rng.random_range(1..content);
        let len_b = content - len_a;
        let label = if self.spec.use_next_sentence_label && rng.random_bool(0.5) {
            1
        } else {
            0
        };

        let mut tokens = Vec::with_capacity(seq_length);
        tokens.push(CLS_ID);
        self.extend_chain(&mut tokens, None, len_a, rng);
        let last_a = *tokens.last().expect("segment A is non-empty");
        tokens.push(SEP_ID);
        let b_start = if label == 0 { Some(last_a) } else { None };
        self.extend_chain(&mut tokens, b_start, len_b, rng);
        tokens.push(SEP_ID);

        let mut type_ids = vec![0u32; len_a + 2];
        type_ids.resize(total, 1);
        (tokens, type_ids, label)
    }

    /// Masks the tokens BERT-style and pads every array to its final length.
    fn finish(
        &self,
        tokens: Vec<u32>,
        type_ids: Vec<u32>,
        label: u32,
        rng: &mut StdRng,
    ) -> MlmExample {
        let masking = Masking {
            seq_length: self.spec.seq_length,
            max_predictions: self.spec.max_predictions_per_seq,
            mask_id: MASK_ID,
            pad_id: PAD_ID,
            is_candidate: &|token| token >= FIRST_REGULAR_ID,
            random_token: &|rng| self.random_token(rng),
        };
        masking.apply(tokens, type_ids, label, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> SyntheticCorpusSpec {
        SyntheticCorpusSpec {
            seed,
            num_examples: 2000,
            seq_length: 32,
            max_predictions_per_seq: 5,
            vocab_size: 100,
            use_next_sentence_label: true,
        }
    }

    fn corpus(seed: u64) -> SyntheticCorpus {
        SyntheticCorpus::new(spec(seed)).unwrap()
    }

    #[test]
    fn chains_stay_in_the_topic_they_start_in() {
        let c = corpus(3);
        let num_regular = 100 - FIRST_REGULAR_ID as usize;
        for token in FIRST_REGULAR_ID..100 {
            let topic = topic_of((token - FIRST_REGULAR_ID) as usize, num_regular);
            let successors = c.likely_successors(token).unwrap();
            assert!(successors
                .iter()
                .all(|s| topic.contains(&((s - FIRST_REGULAR_ID) as usize))));
        }
        // 96 regular tokens make 6 topics of 16; 9 tokens (vocab 13) make a single topic.
        assert_eq!(topic_of(95, 96), 80..96);
        assert_eq!(topic_of(8, 9), 0..9);
    }

    #[test]
    fn examples_are_deterministic_per_index_and_order_free() {
        let a = corpus(1);
        let b = corpus(1);
        let forward: Vec<MlmExample> = (0..50).map(|i| a.example(i)).collect();
        let backward: Vec<MlmExample> = (0..50).rev().map(|i| b.example(i)).collect();
        for (i, ex) in forward.iter().enumerate() {
            assert_eq!(ex, &backward[49 - i]);
        }
        assert_ne!(a.example(0), a.example(1));
    }

    #[test]
    fn distinct_seeds_differ() {
        let (a, b) = (corpus(1), corpus(2));
        assert_ne!(a.successors, b.successors);
        let same = (0..20).filter(|&i| a.example(i) == b.example(i)).count();
        assert_eq!(same, 0);
    }

    #[test]
    fn shapes_layout_and_mask_counts() {
        let c = corpus(3);
        let mut padded = 0;
        for i in 0..c.len() {
            let ex = c.example(i);
            assert_eq!(ex.input_word_ids.len(), 32);
            assert_eq!(ex.input_mask.len(), 32);
            assert_eq!(ex.input_type_ids.len(), 32);
            assert_eq!(ex.masked_lm_positions.len(), 5);
            assert_eq!(ex.masked_lm_ids.len(), 5);
            assert_eq!(ex.masked_lm_weights.len(), 5);

            let real = ex.input_mask.iter().filter(|&&m| m == 1).count();
            assert!(ex.input_mask[..real].iter().all(|&m| m == 1));
            assert!(ex.input_word_ids[real..].iter().all(|&t| t == PAD_ID));
            assert!(ex.input_type_ids[real..].iter().all(|&t| t == 0));
            if real < 32 {
                padded += 1;
            }
            assert_eq!(ex.input_word_ids[0], CLS_ID);
            assert_eq!(ex.input_word_ids[real - 1], SEP_ID);
            let seps: Vec<usize> = (0..real)
                .filter(|&p| ex.input_word_ids[p] == SEP_ID)
                .collect();
            assert_eq!(seps.len(), 2, "{:?}", ex.input_word_ids);
            assert!(ex.input_type_ids[..=seps[0]].iter().all(|&t| t == 0));
            assert!(ex.input_type_ids[seps[0] + 1..real].iter().all(|&t| t == 1));

            let eligible = real - 3;
            let expected = ((eligible as f64 * 0.15).round() as usize).clamp(1, 5);
            let n = ex.masked_lm_weights.iter().filter(|&&w| w == 1.0).count();
            assert_eq!(n, expected);
            assert!(ex.masked_lm_weights[n..].iter().all(|&w| w == 0.0));
            assert!(ex.masked_lm_positions[n..].iter().all(|&p| p == 0));
            assert!(ex.masked_lm_ids[n..].iter().all(|&t| t == 0));
            let positions = &ex.masked_lm_positions[..n];
            assert!(positions.windows(2).all(|w| w[0] < w[1]));
            for (&p, &id) in positions.iter().zip(&ex.masked_lm_ids) {
                let p = p as usize;
                assert!(p > 0 && p < real && !seps.contains(&p));
                assert!((FIRST_REGULAR_ID..100).contains(&id));
            }
        }
        assert!(padded >= c.len() / PADDED_EVERY, "padded {padded}");
    }

    #[test]
    fn masking_is_roughly_80_10_10() {
        let c = corpus(4);
        let (mut masked, mut kept, mut replaced) = (0usize, 0usize, 0usize);
        for i in 0..c.len() {
            let ex = c.example(i);
            for k in 0..5 {
                if ex.masked_lm_weights[k] == 0.0 {
                    continue;
                }
                let now = ex.input_word_ids[ex.masked_lm_positions[k] as usize];
                if now == MASK_ID {
                    masked += 1;
                } else if now == ex.masked_lm_ids[k] {
                    kept += 1;
                } else {
                    assert!(now >= FIRST_REGULAR_ID);
                    replaced += 1;
                }
            }
        }
        let total = (masked + kept + replaced) as f64;
        let (m, k, r) = (
            masked as f64 / total,
            kept as f64 / total,
            replaced as f64 / total,
        );
        assert!((m - 0.8).abs() < 0.03, "mask {m}");
        assert!((k - 0.1).abs() < 0.03, "keep {k}");
        assert!((r - 0.1).abs() < 0.03, "random {r}");
    }

    #[test]
    fn next_sentence_labels_are_balanced_or_absent() {
        let c = corpus(5);
        let ones = (0..c.len())
            .filter(|&i| c.example(i).next_sentence_label == 1)
            .count() as f64;
        let frac = ones / c.len() as f64;
        assert!((frac - 0.5).abs() < 0.05, "fraction of label 1: {frac}");

        let no_nsp = SyntheticCorpus::new(SyntheticCorpusSpec {
            use_next_sentence_label: false,
            ..spec(5)
        })
        .unwrap();
        assert!((0..200).all(|i| no_nsp.example(i).next_sentence_label == 0));
    }

    #[test]
    fn markov_structure_is_learnable() {
        let c = corpus(6);
        let num_regular = 96usize;
        let mut counts = vec![vec![0usize; 100]; 100];
        for i in 0..c.len() {
            let ex = c.example(i);
            // Unmasked bigrams inside segments (masking only touches predicted positions).
            let masked: Vec<usize> = ex.masked_lm_positions[..]
                .iter()
                .zip(&ex.masked_lm_weights)
                .filter(|(_, &w)| w == 1.0)
                .map(|(&p, _)| p as usize)
                .collect();
            for p in 1..ex.input_word_ids.len() {
                let (a, b) = (ex.input_word_ids[p - 1], ex.input_word_ids[p]);
                let clean = !masked.contains(&p) && !masked.contains(&(p - 1));
                if clean && a >= FIRST_REGULAR_ID && b >= FIRST_REGULAR_ID {
                    counts[a as usize][b as usize] += 1;
                }
            }
        }
        let uniform = 1.0 / num_regular as f64;
        let mut checked = 0;
        for (prev, row) in counts.iter().enumerate() {
            let total: usize = row.iter().sum();
            if total < 100 {
                continue;
            }
            let best = row.iter().copied().max().unwrap() as f64 / total as f64;
            assert!(best > 0.45, "token {prev}: top successor p={best}");
            assert!(best > 20.0 * uniform);
            let top = c.likely_successors(prev as u32).unwrap()[0] as usize;
            assert_eq!(row[top], *row.iter().max().unwrap());
            checked += 1;
        }
        assert!(checked > 50, "only {checked} tokens had enough data");
    }

    #[test]
    fn rejects_degenerate_specs() {
        let bad = |f: fn(&mut SyntheticCorpusSpec)| {
            let mut s = spec(0);
            f(&mut s);
            SyntheticCorpus::new(s).unwrap_err()
        };
        assert_eq!(
            bad(|s| s.seq_length = 4),
            SyntheticCorpusError::SeqLengthTooSmall(4)
        );
        assert_eq!(
            bad(|s| s.max_predictions_per_seq = 0),
            SyntheticCorpusError::NoPredictions
        );
        assert_eq!(
            bad(|s| s.vocab_size = 7),
            SyntheticCorpusError::VocabTooSmall(7)
        );
        let tiny = SyntheticCorpus::new(SyntheticCorpusSpec {
            seq_length: 5,
            num_examples: 16,
            ..spec(0)
        })
        .unwrap();
        for i in 0..16 {
            let ex = tiny.example(i);
            assert_eq!(ex.input_mask, vec![1; 5]);
            assert_eq!(
                ex.masked_lm_weights.iter().filter(|&&w| w == 1.0).count(),
                1
            );
        }
    }
}
