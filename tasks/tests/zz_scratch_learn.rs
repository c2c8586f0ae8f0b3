use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use grove_tasks::data::synthetic_corpus::*;
use grove_tasks::models::*;
use rand::SeedableRng;

#[test]
fn scratch_learn() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let corpus = SyntheticCorpus::new(SyntheticCorpusSpec {
        seed: 1,
        num_examples: 100000,
        seq_length: 64,
        max_predictions_per_seq: 10,
        vocab_size: 1000,
        use_next_sentence_label: true,
    })
    .unwrap();
    let cfg = BertPretrainerConfig {
        encoder: EncoderConfig {
            kind: EncoderType::Bert,
            bert: BertEncoderConfig {
                vocab_size: 1000,
                hidden_size: 64,
                num_layers: 2,
                num_attention_heads: 4,
                intermediate_size: 128,
                max_position_embeddings: 64,
                ..Default::default()
            },
        },
        cls_heads: vec![ClsHeadConfig {
            inner_dim: 64,
            name: "next_sentence".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let varmap = VarMap::new();
    let model = BertPretrainer::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 3e-3)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let bsz = 32;
    let t0 = std::time::Instant::now();
    for step in 0..300 {
        let exs: Vec<MlmExample> = (0..bsz).map(|i| corpus.example(step * bsz + i)).collect();
        let cat = |f: &dyn Fn(&MlmExample) -> Vec<u32>, n: usize| {
            Tensor::from_vec(
                exs.iter().flat_map(|e| f(e)).collect::<Vec<u32>>(),
                (bsz, n),
                &dev,
            )
        };
        let inputs = PretrainerInputs {
            input_word_ids: cat(&|e| e.input_word_ids.clone(), 64)?,
            input_mask: cat(&|e| e.input_mask.clone(), 64)?,
            input_type_ids: cat(&|e| e.input_type_ids.clone(), 64)?,
            masked_lm_positions: cat(&|e| e.masked_lm_positions.clone(), 10)?,
        };
        let labels = Tensor::from_vec(
            exs.iter()
                .flat_map(|e| e.masked_lm_ids.clone())
                .collect::<Vec<u32>>(),
            bsz * 10,
            &dev,
        )?;
        let w = Tensor::from_vec(
            exs.iter()
                .flat_map(|e| e.masked_lm_weights.clone())
                .collect::<Vec<f32>>(),
            bsz * 10,
            &dev,
        )?;
        let nsp = Tensor::from_vec(
            exs.iter()
                .map(|e| e.next_sentence_label)
                .collect::<Vec<u32>>(),
            bsz,
            &dev,
        )?;
        let out = model.forward(&inputs, Some(&mut rng))?;
        let lsm = candle_nn::ops::log_softmax(&out.mlm_logits, 1)?;
        let nll = lsm.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
        let mlm = ((nll * &w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64)?;
        let nspl = candle_nn::loss::cross_entropy(&out.cls_logits[0].1, &nsp)?;
        let loss = (&mlm + &nspl)?;
        opt.backward_step(&loss)?;
        if step % 25 == 0 || step == 299 {
            println!(
                "step {step} mlm {:.3} nsp {:.3} t {:?}",
                mlm.to_scalar::<f32>()?,
                nspl.to_scalar::<f32>()?,
                t0.elapsed()
            );
        }
    }
    Ok(())
}
