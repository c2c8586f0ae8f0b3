use grove_tasks::data::synthetic_corpus::*;
fn main() {
    let c = SyntheticCorpus::new(SyntheticCorpusSpec {
        seed: 0,
        num_examples: 10,
        seq_length: 64,
        max_predictions_per_seq: 10,
        vocab_size: 256,
        use_next_sentence_label: true,
    })
    .unwrap();
    for i in 0..2 {
        let e = c.example(i);
        println!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            e.input_word_ids,
            e.input_mask,
            e.input_type_ids,
            e.masked_lm_positions,
            e.masked_lm_ids,
            e.masked_lm_weights
        );
    }
    println!("{:?}", c.likely_successors(10));
}
