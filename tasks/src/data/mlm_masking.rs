//! BERT's masked-LM example construction (Google's `create_pretraining_data.py`): choose 15%
//! of the candidate positions (at least one, at most `max_predictions`), replace 80% of them
//! with `[MASK]`, keep 10% and replace 10% with a random token, then pad every array.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::Rng;

use super::synthetic_corpus::MlmExample;

/// Fraction of candidate positions chosen for prediction (BERT's `masked_lm_prob`).
const MASKED_LM_PROB: f64 = 0.15;

/// How to mask and pad one sequence.
pub struct Masking<'a> {
    /// Length of the token arrays after padding.
    pub seq_length: usize,
    /// Length of the prediction arrays.
    pub max_predictions: usize,
    /// The `[MASK]` id.
    pub mask_id: u32,
    /// The `[PAD]` id.
    pub pad_id: u32,
    /// Whether a token may be predicted (not `[CLS]`, `[SEP]`, ...).
    pub is_candidate: &'a dyn Fn(u32) -> bool,
    /// Draws the replacement of the 10% random case.
    pub random_token: &'a dyn Fn(&mut StdRng) -> u32,
}

impl Masking<'_> {
    /// Masks `tokens` (`[CLS] A [SEP] B [SEP]`, unpadded) and pads them, their `type_ids` and
    /// the prediction arrays; `label` is the next-sentence label.
    pub fn apply(
        &self,
        mut tokens: Vec<u32>,
        mut type_ids: Vec<u32>,
        label: u32,
        rng: &mut StdRng,
    ) -> MlmExample {
        let max_pred = self.max_predictions;
        let candidates: Vec<usize> = (0..tokens.len())
            .filter(|&i| (self.is_candidate)(tokens[i]))
            .collect();
        let num_to_predict = ((candidates.len() as f64 * MASKED_LM_PROB).round() as usize)
            .max(1)
            .min(max_pred)
            .min(candidates.len());
        let mut chosen: Vec<usize> = sample(rng, candidates.len(), num_to_predict)
            .into_iter()
            .map(|i| candidates[i])
            .collect();
        chosen.sort_unstable();

        let mut masked_lm_positions = Vec::with_capacity(max_pred);
        let mut masked_lm_ids = Vec::with_capacity(max_pred);
        for &pos in &chosen {
            masked_lm_positions.push(pos as u32);
            masked_lm_ids.push(tokens[pos]);
            let r: f64 = rng.random();
            tokens[pos] = if r < 0.8 {
                self.mask_id
            } else if r < 0.9 {
                tokens[pos]
            } else {
                (self.random_token)(rng)
            };
        }
        let mut masked_lm_weights = vec![1.0f32; chosen.len()];
        masked_lm_positions.resize(max_pred, 0);
        masked_lm_ids.resize(max_pred, 0);
        masked_lm_weights.resize(max_pred, 0.0);

        let real = tokens.len();
        let mut input_mask = vec![1u32; real];
        tokens.resize(self.seq_length, self.pad_id);
        input_mask.resize(self.seq_length, 0);
        type_ids.resize(self.seq_length, 0);
        MlmExample {
            input_word_ids: tokens,
            input_mask,
            input_type_ids: type_ids,
            masked_lm_positions,
            masked_lm_ids,
            masked_lm_weights,
            next_sentence_label: label,
        }
    }
}
