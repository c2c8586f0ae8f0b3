//! Criterion micro-benchmarks of the hot kernels at BERT-mini's shapes: each fused kernel
//! against its primitive-op version (forward and backward), and one AdamW update of the
//! 8192×256 word embedding. `cargo bench -p grove-benches --bench kernels`.

use candle_core::{Device, Result, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use grove_core::config::optimization::{AdamWConfig, OptimizerConfig};
use grove_core::optimization::{build_optimizer, NamedVar};
use grove_kernels as ops;

/// Forward, then backward of `sum(out)`.
fn forward_backward(x: &Var, f: &dyn Fn(&Tensor) -> Result<Tensor>) {
    let out = f(x.as_tensor()).unwrap();
    out.sum_all().unwrap().backward().unwrap();
}

fn random(shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::randn(0f32, 1f32, shape, &Device::Cpu).unwrap()).unwrap()
}

fn kernels(c: &mut Criterion) {
    // (B*S, H) hidden states, (B, NH, S, S) attention scores, (B*S, FFN) activations and
    // (B*P, V) MLM logits of BERT-mini.
    let hidden = random(&[2048, 256]);
    let scores = random(&[16, 4, 128, 128]);
    let ffn = random(&[2048, 1024]);
    let logits = random(&[304, 8192]);
    let gamma = Tensor::ones(256, candle_core::DType::F32, &Device::Cpu).unwrap();
    let beta = Tensor::zeros(256, candle_core::DType::F32, &Device::Cpu).unwrap();
    let labels = Tensor::arange(0u32, 304, &Device::Cpu).unwrap();
    let mask_bias = Tensor::zeros((16, 1, 1, 128), candle_core::DType::F32, &Device::Cpu).unwrap();

    let layer_norm = |x: &Tensor| ops::layer_norm(x, &gamma, &beta, 1e-12);
    let layer_norm_primitive = |x: &Tensor| ops::layer_norm_primitive(x, &gamma, &beta, 1e-12);
    let cross_entropy = |x: &Tensor| ops::cross_entropy_rows(x, &labels);
    let cross_entropy_primitive = |x: &Tensor| ops::cross_entropy_rows_primitive(x, &labels);
    // The feed-forward block's first dense layer, (2048, 256) → (2048, 1024).
    let ffn_weight = random(&[1024, 256]);
    let ffn_bias = random(&[1024]);
    let linear = |x: &Tensor| ops::linear(x, ffn_weight.as_tensor(), ffn_bias.as_tensor());
    let linear_primitive =
        |x: &Tensor| ops::linear_primitive(x, ffn_weight.as_tensor(), ffn_bias.as_tensor());
    // Self-attention of `x` up to its output projection; the projections are variables too.
    let projections: Vec<(Var, Var)> = (0..3)
        .map(|_| (random(&[256, 256]), random(&[256])))
        .collect();
    let project = |i: usize| (projections[i].0.as_tensor(), projections[i].1.as_tensor());
    let attention = |x: &Tensor| {
        let params = [project(0), project(1), project(2)];
        ops::self_attention(x, params, &mask_bias, (16, 128, 4), 0.125)
    };
    let attention_primitive = |x: &Tensor| {
        let params = [project(0), project(1), project(2)];
        ops::self_attention_primitive(x, params, &mask_bias, (16, 128, 4), 0.125)
    };
    let masked = |x: &Tensor| ops::masked_softmax(x, &mask_bias, 0.125);
    let masked_primitive = |x: &Tensor| ops::masked_softmax_primitive(x, &mask_bias, 0.125);
    type Kernel<'a> = (&'a str, &'a Var, &'a dyn Fn(&Tensor) -> Result<Tensor>);
    let cases: [Kernel; 14] = [
        ("linear/fused", &hidden, &linear),
        ("linear/primitive", &hidden, &linear_primitive),
        ("layer_norm/fused", &hidden, &layer_norm),
        ("layer_norm/primitive", &hidden, &layer_norm_primitive),
        ("softmax/fused", &scores, &ops::softmax_last_dim),
        (
            "softmax/primitive",
            &scores,
            &ops::softmax_last_dim_primitive,
        ),
        ("self_attention/fused", &hidden, &attention),
        ("self_attention/primitive", &hidden, &attention_primitive),
        ("masked_softmax/fused", &scores, &masked),
        ("masked_softmax/primitive", &scores, &masked_primitive),
        ("gelu/fused", &ffn, &ops::gelu_erf),
        ("gelu/primitive", &ffn, &ops::gelu_erf_primitive),
        ("cross_entropy/fused", &logits, &cross_entropy),
        ("cross_entropy/primitive", &logits, &cross_entropy_primitive),
    ];
    for (name, x, f) in cases {
        c.bench_function(name, |b| b.iter(|| forward_backward(x, f)));
    }
}

fn adamw(c: &mut Criterion) {
    let embedding = random(&[8192, 256]);
    let params = [NamedVar::new("word_embeddings.weight", embedding.clone())];
    let loss = embedding.as_tensor().sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let config = OptimizerConfig::from(AdamWConfig::default());
    let mut optimizer = build_optimizer(&config).unwrap();
    c.bench_function("adamw/word_embeddings", |b| {
        b.iter(|| optimizer.apply(&params, &grads, 1e-3).unwrap())
    });
}

criterion_group!(benches, kernels, adamw);
criterion_main!(benches);
