//! The same workloads as a bare candle 0.11 loop: candle-nn layers, primitive ops (candle-nn's
//! fused layer norm and softmax have no backward), candle-nn's `AdamW`, data generated once.
//! The baseline Grove's step is compared with, as in reference/perf_anchors.md.

use std::time::Instant;

use anyhow::ensure;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{linear, AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::workloads::Workload;

/// Sets candle's defaults for `threads` compute threads: its rayon pool and its element-wise
/// worker pool both get `threads` (Grove keeps the latter to one thread, see
/// `grove_core::runtime::set_compute_threads`).
pub fn set_threads(threads: usize) {
    // SAFETY: called at start-up, before candle or rayon start any thread.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
}

/// Milliseconds per training step: `warmup` steps, then the mean over `steps` steps.
pub fn step_ms(workload: Workload, warmup: u64, steps: u64) -> anyhow::Result<f64> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model: Box<dyn Fn() -> Result<Tensor>> = match workload {
        Workload::Mlp => Box::new(mlp(vb)?),
        Workload::Bert => Box::new(bert(vb)?),
    };
    let params = ParamsAdamW {
        lr: 1e-3,
        weight_decay: 0.01,
        eps: 1e-6,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(varmap.all_vars(), params)?;
    let mut step = || -> anyhow::Result<f32> {
        let loss = model()?;
        optimizer.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()?)
    };
    for _ in 0..warmup {
        step()?;
    }
    let start = Instant::now();
    let mut last = 0.0;
    for _ in 0..steps {
        last = step()?;
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    ensure!(last.is_finite(), "training loss is not finite: {last}");
    Ok(ms)
}

/// Uniform values in [-1, 1) of `shape`.
fn random(shape: &[usize]) -> Result<Tensor> {
    Tensor::rand(-1f32, 1f32, shape, &Device::Cpu)
}

/// Random class ids below `classes`, `n` of them.
fn random_ids(n: usize, classes: usize) -> Result<Tensor> {
    Tensor::rand(0f32, classes as f32, n, &Device::Cpu)?
        .floor()?
        .to_dtype(DType::U32)
}

/// The MLP's loss on one fixed batch of 128.
fn mlp(vb: VarBuilder) -> Result<impl Fn() -> Result<Tensor>> {
    let layers = [
        linear(784, 512, vb.pp("l1"))?,
        linear(512, 512, vb.pp("l2"))?,
        linear(512, 10, vb.pp("l3"))?,
    ];
    let (x, y) = (random(&[128, 784])?, random_ids(128, 10)?);
    Ok(move || {
        let h = layers[0].forward(&x)?.relu()?;
        let h = layers[1].forward(&h)?.relu()?;
        candle_nn::loss::cross_entropy(&layers[2].forward(&h)?, &y)
    })
}

const VOCAB: usize = 8192;
const HIDDEN: usize = 256;
const LAYERS: usize = 4;
const HEADS: usize = 4;
const FFN: usize = 1024;
const SEQ: usize = 128;
const BATCH: usize = 16;
const MASKED: usize = 19;

/// LayerNorm written with primitive ops, weights `w` and `b` under `vb`.
struct Norm(Tensor, Tensor);

impl Norm {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Norm(
            vb.get_with_hints(HIDDEN, "w", candle_nn::Init::Const(1.0))?,
            vb.get_with_hints(HIDDEN, "b", candle_nn::Init::Const(0.0))?,
        ))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        centered
            .broadcast_div(&(var + 1e-12)?.sqrt()?)?
            .broadcast_mul(&self.0)?
            .broadcast_add(&self.1)
    }
}

/// One post-LayerNorm transformer layer.
struct Layer {
    qkvo: [Linear; 4],
    ffn: [Linear; 2],
    norms: [Norm; 2],
}

impl Layer {
    fn new(vb: VarBuilder) -> Result<Self> {
        let dense = |i: usize, o: usize, name: &str| linear(i, o, vb.pp(name));
        Ok(Layer {
            qkvo: [
                dense(HIDDEN, HIDDEN, "q")?,
                dense(HIDDEN, HIDDEN, "k")?,
                dense(HIDDEN, HIDDEN, "v")?,
                dense(HIDDEN, HIDDEN, "o")?,
            ],
            ffn: [dense(HIDDEN, FFN, "f1")?, dense(FFN, HIDDEN, "f2")?],
            norms: [Norm::new(vb.pp("ln1"))?, Norm::new(vb.pp("ln2"))?],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dh = HIDDEN / HEADS;
        let heads = |t: Tensor| {
            t.reshape((BATCH, SEQ, HEADS, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let [q, k, v, o] = &self.qkvo;
        let (q, k, v) = (
            heads(q.forward(x)?)?,
            heads(k.forward(x)?)?,
            heads(v.forward(x)?)?,
        );
        let scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let context = p
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((BATCH * SEQ, HIDDEN))?;
        let x = self.norms[0].forward(&(x + o.forward(&context)?)?)?;
        let inner = self.ffn[0].forward(&x)?.gelu_erf()?;
        self.norms[1].forward(&(&x + self.ffn[1].forward(&inner)?)?)
    }
}

/// BERT-mini's masked LM loss on one fixed batch.
fn bert(vb: VarBuilder) -> Result<impl Fn() -> Result<Tensor>> {
    let init = candle_nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    };
    let word = vb.get_with_hints((VOCAB, HIDDEN), "word", init)?;
    let position = vb.get_with_hints((SEQ, HIDDEN), "position", init)?;
    let embedding_norm = Norm::new(vb.pp("ln_e"))?;
    let layers = (0..LAYERS)
        .map(|i| Layer::new(vb.pp(format!("layer{i}"))))
        .collect::<Result<Vec<_>>>()?;
    let transform = linear(HIDDEN, HIDDEN, vb.pp("transform"))?;
    let transform_norm = Norm::new(vb.pp("ln_t"))?;
    let decoder_bias = vb.get_with_hints(VOCAB, "decoder_bias", candle_nn::Init::Const(0.0))?;
    let ids = random_ids(BATCH * SEQ, VOCAB)?;
    // MASKED distinct positions per sequence, as rows of the flattened (B*S, H) output.
    let rows: Vec<u32> = (0..BATCH * MASKED)
        .map(|i| ((i / MASKED) * SEQ + (i % MASKED) * (SEQ / MASKED)) as u32)
        .collect();
    let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
    let labels = random_ids(BATCH * MASKED, VOCAB)?;
    Ok(move || {
        let x = word
            .index_select(&ids, 0)?
            .reshape((BATCH, SEQ, HIDDEN))?
            .broadcast_add(&position)?
            .reshape((BATCH * SEQ, HIDDEN))?;
        let mut x = embedding_norm.forward(&x)?;
        for layer in &layers {
            x = layer.forward(&x)?;
        }
        let h = transform.forward(&x.index_select(&rows, 0)?)?.gelu_erf()?;
        let h = transform_norm.forward(&h)?;
        let logits = h.matmul(&word.t()?)?.broadcast_add(&decoder_bias)?;
        candle_nn::loss::cross_entropy(&logits, &labels)
    })
}
