//! Each fused kernel against its primitive-op version: forward values and the gradients of
//! every input (from a first and a second backward over the same graph), relative error at
//! most 1e-4 in f32, on random inputs of several shapes, contiguous and not.

use candle_core::{DType, Device, Result, Tensor, Var};

use super::*;

/// The largest absolute difference relative to the largest magnitude of `want`.
fn relative_error(got: &Tensor, want: &Tensor) -> Result<f32> {
    let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let scale = want.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-6);
    Ok(diff / scale)
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) -> Result<()> {
    assert_eq!(got.dims(), want.dims(), "{what}");
    let err = relative_error(got, want)?;
    assert!(err <= 1e-4, "{what}: relative error {err}");
    Ok(())
}

/// A variable of pseudo-random values with `dims`; with `transposed`, its last two
/// dimensions are swapped, so that [`as_used`] gives a non-contiguous view of shape `dims`.
fn input(dims: &[usize], seed: u64, transposed: bool) -> Result<Var> {
    let dev = Device::Cpu;
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let x = ((i as u64 + 1) * 2654435761 + seed * 40503) % 10007;
            (x as f32 / 10007.0 - 0.5) * 6.0
        })
        .collect();
    if transposed && dims.len() >= 2 {
        let mut swapped = dims.to_vec();
        let r = swapped.len();
        swapped.swap(r - 1, r - 2);
        return Var::from_vec(values, swapped, &dev);
    }
    Var::from_vec(values, dims, &dev)
}

/// The op's input as used: the var itself, or its transposed view.
fn as_used(var: &Var, transposed: bool) -> Result<Tensor> {
    let t = var.as_tensor();
    if transposed && t.rank() >= 2 {
        t.transpose(t.rank() - 1, t.rank() - 2)
    } else {
        Ok(t.clone())
    }
}

/// `sum(out · w)` for fixed weights `w`, so every output element has a distinct gradient.
fn weighted_sum(out: &Tensor) -> Result<Tensor> {
    let n = out.elem_count();
    let w: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let w = Tensor::from_vec(w, out.shape(), out.device())?;
    (out * w)?.sum_all()
}

/// Runs `fused` and `primitive` on the same inputs and compares outputs and gradients.
fn check(
    name: &str,
    inputs: &[Var],
    transposed: bool,
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    primitive: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let used: Vec<Tensor> = inputs
        .iter()
        .map(|v| as_used(v, transposed))
        .collect::<Result<_>>()?;
    if transposed && used[0].dims().iter().all(|&d| d > 1) {
        assert!(
            !used[0].is_contiguous(),
            "{name}: the input should be a strided view"
        );
    }
    let (a, b) = (fused(&used)?, primitive(&used)?);
    assert_close(&a, &b, &format!("{name} forward"))?;
    let gb = weighted_sum(&b)?.backward()?;
    // Twice over the same graph: an op's first backward takes what its forward kept, and the
    // second recomputes it.
    for pass in ["", ", second backward"] {
        let ga = weighted_sum(&a)?.backward()?;
        for (i, var) in inputs.iter().enumerate() {
            let (da, db) = (ga.get(var).unwrap(), gb.get(var).unwrap());
            assert_close(da, db, &format!("{name} gradient of input {i}{pass}"))?;
        }
    }
    // Inside a DirectGradients scope, the parameters that are variables (all of them unless
    // transposed) leave candle's graph and their gradients come from the ops' backward.
    let direct = DirectGradients::start();
    let out = fused(&used)?;
    let gd = direct.backward(&weighted_sum(&out)?)?;
    for (i, var) in inputs.iter().enumerate() {
        let (dd, db) = (gd.get(var).unwrap(), gb.get(var).unwrap());
        assert_close(dd, db, &format!("{name} gradient of input {i}, direct"))?;
    }
    Ok(())
}

const SHAPES: [&[usize]; 4] = [&[1, 5], &[7, 64], &[2, 3, 33], &[4, 2, 16, 16]];

#[test]
fn layer_norm_matches_primitive_ops() -> Result<()> {
    for (k, dims) in SHAPES.iter().enumerate() {
        for transposed in [false, true] {
            let h = *dims.last().unwrap();
            let x = input(dims, k as u64, transposed)?;
            let gamma = input(&[h], 100 + k as u64, false)?;
            let beta = input(&[h], 200 + k as u64, false)?;
            check(
                &format!("layer_norm {dims:?} transposed={transposed}"),
                &[x.clone(), gamma.clone(), beta.clone()],
                transposed,
                |t| layer_norm(&t[0], &t[1].flatten_all()?, &t[2].flatten_all()?, 1e-12),
                |t| layer_norm_primitive(&t[0], &t[1].flatten_all()?, &t[2].flatten_all()?, 1e-12),
            )?;
            let residual = input(dims, 300 + k as u64, transposed)?;
            check(
                &format!("add_layer_norm {dims:?} transposed={transposed}"),
                &[x.clone(), residual, gamma.clone(), beta.clone()],
                transposed,
                |t| {
                    add_layer_norm(
                        &t[0],
                        &t[1],
                        &t[2].flatten_all()?,
                        &t[3].flatten_all()?,
                        1e-12,
                    )
                },
                |t| {
                    let sum = (&t[0] + &t[1])?;
                    layer_norm_primitive(&sum, &t[2].flatten_all()?, &t[3].flatten_all()?, 1e-12)
                },
            )?;
        }
    }
    Ok(())
}

#[test]
fn softmax_matches_primitive_ops() -> Result<()> {
    for (k, dims) in SHAPES.iter().enumerate() {
        for transposed in [false, true] {
            let x = input(dims, 10 + k as u64, transposed)?;
            check(
                &format!("softmax {dims:?} transposed={transposed}"),
                &[x],
                transposed,
                |t| softmax_last_dim(&t[0]),
                |t| softmax_last_dim_primitive(&t[0]),
            )?;
        }
    }
    Ok(())
}

/// The `(B, 1, …, 1, K)` additive attention bias for scores of shape `dims`: −10 000 where
/// `masked(batch item, key)`, 0 elsewhere.
fn key_mask_bias(dims: &[usize], masked: impl Fn(usize, usize) -> bool) -> Result<Tensor> {
    let (batch, keys) = (dims[0], dims[dims.len() - 1]);
    let mut bias_dims = vec![1; dims.len()];
    bias_dims[0] = batch;
    bias_dims[dims.len() - 1] = keys;
    let bias: Vec<f32> = (0..batch * keys)
        .map(|i| {
            if masked(i / keys, i % keys) {
                -10000.0
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(bias, bias_dims, &Device::Cpu)
}

#[test]
fn masked_softmax_matches_primitive_ops() -> Result<()> {
    for (k, dims) in [
        &[1usize, 1, 1, 5][..],
        &[2, 3, 7, 7],
        &[3, 4, 16, 16],
        &[2, 33],
    ]
    .iter()
    .enumerate()
    {
        for transposed in [false, true] {
            let scores = input(dims, 90 + k as u64, transposed)?;
            // Item b masks its last b keys.
            let keys = *dims.last().unwrap();
            let bias = key_mask_bias(dims, |b, key| key + b >= keys)?;
            check(
                &format!("masked_softmax {dims:?} transposed={transposed}"),
                &[scores],
                transposed,
                |t| masked_softmax(&t[0], &bias, 0.125),
                |t| masked_softmax_primitive(&t[0], &bias, 0.125),
            )?;
        }
    }
    let scores = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu)?;
    let wrong = Tensor::zeros((2, 1, 3), DType::F32, &Device::Cpu)?;
    assert!(masked_softmax(&scores, &wrong, 1.0).is_err());
    Ok(())
}

/// Masked keys get probability and gradient exactly 0, and nothing in either is subnormal
/// (subnormal operands made the products they feed ~50× slower on an AVX-512 Xeon).
#[test]
fn masked_softmax_gives_masked_keys_exact_zeros() -> Result<()> {
    let (batch, queries, keys) = (2, 8, 16);
    let scores = input(&[batch, 1, queries, keys], 7, false)?;
    // Item b masks keys from 4 + 4b on.
    let masked = |b: usize, key: usize| key >= 4 + 4 * b;
    let bias = key_mask_bias(&[batch, 1, queries, keys], masked)?;
    let probs = masked_softmax(scores.as_tensor(), &bias, 0.125)?;
    let weights = input(&[batch, 1, queries, keys], 8, false)?;
    let grad = (&probs * weights.as_tensor())?.sum_all()?.backward()?;
    let grad = grad.get(&scores).expect("scores get a gradient");
    for (name, values) in [("probabilities", &probs), ("gradient", grad)] {
        let values = values.flatten_all()?.to_vec1::<f32>()?;
        for (i, v) in values.iter().enumerate() {
            let (b, key) = (i / (queries * keys), i % keys);
            assert!(!v.is_subnormal(), "{name}[{i}] = {v:e} is subnormal");
            if masked(b, key) {
                assert_eq!(*v, 0.0, "{name}[{i}] of a masked key");
            }
        }
    }
    Ok(())
}

#[test]
fn gelu_matches_candles_gelu_erf() -> Result<()> {
    for (k, dims) in SHAPES.iter().enumerate() {
        for transposed in [false, true] {
            let x = input(dims, 20 + k as u64, transposed)?;
            check(
                &format!("gelu {dims:?} transposed={transposed}"),
                &[x],
                transposed,
                |t| gelu_erf(&t[0]),
                |t| gelu_erf_primitive(&t[0]),
            )?;
        }
    }
    Ok(())
}

#[test]
fn cross_entropy_matches_primitive_ops() -> Result<()> {
    for (k, &(rows, classes)) in [(1, 2), (9, 17), (64, 300)].iter().enumerate() {
        for transposed in [false, true] {
            let dims = [rows, classes];
            let logits = input(&dims, 30 + k as u64, transposed)?;
            let labels: Vec<u32> = (0..rows).map(|r| ((r * 31 + k) % classes) as u32).collect();
            let labels = Tensor::new(labels.as_slice(), &Device::Cpu)?;
            check(
                &format!("cross_entropy {dims:?} transposed={transposed}"),
                &[logits],
                transposed,
                |t| cross_entropy_rows(&t[0], &labels),
                |t| cross_entropy_rows_primitive(&t[0], &labels),
            )?;
        }
    }
    Ok(())
}

#[test]
fn attention_heads_match_primitive_ops() -> Result<()> {
    for (k, &(batch, seq, heads, width)) in [(1, 1, 1, 4), (2, 5, 3, 4), (3, 16, 4, 8)]
        .iter()
        .enumerate()
    {
        for transposed in [false, true] {
            let dims = [batch * seq, heads * width];
            let x = input(&dims, 40 + k as u64, transposed)?;
            check(
                &format!("split_heads {dims:?} transposed={transposed}"),
                &[x],
                transposed,
                |t| split_heads(&t[0], batch, seq, heads),
                |t| split_heads_primitive(&t[0], batch, seq, heads),
            )?;
            let dims = [batch, heads, seq, width];
            let x = input(&dims, 50 + k as u64, transposed)?;
            check(
                &format!("merge_heads {dims:?} transposed={transposed}"),
                &[x],
                transposed,
                |t| merge_heads(&t[0]),
                |t| merge_heads_primitive(&t[0]),
            )?;
        }
    }
    Ok(())
}

#[test]
fn cross_entropy_rejects_bad_labels() -> Result<()> {
    let logits = Tensor::zeros((2, 3), DType::F32, &Device::Cpu)?;
    let labels = Tensor::new(&[0u32, 3], &Device::Cpu)?;
    let err = cross_entropy_rows(&logits, &labels)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 3 at position 1"), "{err}");
    let short = Tensor::new(&[0u32], &Device::Cpu)?;
    assert!(cross_entropy_rows(&logits, &short).is_err());
    Ok(())
}

#[test]
fn other_dtypes_take_the_primitive_path() -> Result<()> {
    let x = input(&[3, 8], 5, false)?;
    let x64 = x.as_tensor().to_dtype(DType::F64)?;
    let fused = softmax_last_dim(x.as_tensor())?;
    let fallback = softmax_last_dim(&x64)?.to_dtype(DType::F32)?;
    assert_close(&fallback, &fused, "f64 softmax")?;
    let gamma = Tensor::ones(8, DType::F64, &Device::Cpu)?;
    let beta = Tensor::zeros(8, DType::F64, &Device::Cpu)?;
    let ln = layer_norm(&x64, &gamma, &beta, 1e-5)?.to_dtype(DType::F32)?;
    let gamma32 = gamma.to_dtype(DType::F32)?;
    let beta32 = beta.to_dtype(DType::F32)?;
    assert_close(
        &ln,
        &layer_norm(x.as_tensor(), &gamma32, &beta32, 1e-5)?,
        "f64 layer norm",
    )?;
    let w = input(&[5, 8], 6, false)?;
    let w64 = w.as_tensor().to_dtype(DType::F64)?;
    assert_close(
        &matmul_nt(&x64, &w64)?.to_dtype(DType::F32)?,
        &matmul_nt(x.as_tensor(), w.as_tensor())?,
        "f64 matmul_nt",
    )?;
    Ok(())
}

#[test]
fn matmul_nt_matches_primitive_ops() -> Result<()> {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[1, 3], &[2, 3]),
        (&[7, 33], &[12, 33]),
        (&[3, 5, 16], &[3, 9, 16]),
        (&[2, 3, 16, 8], &[2, 3, 16, 8]),
    ];
    for (k, (a_dims, b_dims)) in shapes.iter().enumerate() {
        for transposed in [false, true] {
            let a = input(a_dims, 130 + k as u64, transposed)?;
            let b = input(b_dims, 140 + k as u64, transposed)?;
            check(
                &format!("matmul_nt {a_dims:?}·{b_dims:?}ᵀ transposed={transposed}"),
                &[a, b],
                transposed,
                |t| matmul_nt(&t[0], &t[1]),
                |t| matmul_nt_primitive(&t[0], &t[1]),
            )?;
        }
    }
    let a = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu)?;
    let b = Tensor::zeros((3, 5, 4), DType::F32, &Device::Cpu)?;
    assert!(matmul_nt(&a, &b).is_err(), "leading dimensions differ");
    assert!(matmul_nt(&a, &a.narrow(2, 0, 3)?).is_err(), "K differs");
    Ok(())
}

#[test]
fn linear_matches_primitive_ops() -> Result<()> {
    for (k, (m, n, kk)) in [(1, 1, 3), (7, 12, 33), (64, 48, 32)]
        .into_iter()
        .enumerate()
    {
        for transposed in [false, true] {
            let x = input(&[m, kk], 150 + k as u64, transposed)?;
            let w = input(&[n, kk], 160 + k as u64, transposed)?;
            let b = input(&[1, n], 170 + k as u64, false)?;
            check(
                &format!("linear ({m}, {kk})·({n}, {kk})ᵀ transposed={transposed}"),
                &[x.clone(), w.clone(), b.clone()],
                transposed,
                |t| linear(&t[0], &t[1], &t[2].flatten_all()?),
                |t| linear_primitive(&t[0], &t[1], &t[2].flatten_all()?),
            )?;
            check(
                &format!("linear_gelu ({m}, {kk})·({n}, {kk})ᵀ transposed={transposed}"),
                &[x.clone(), w.clone(), b.clone()],
                transposed,
                |t| linear_gelu(&t[0], &t[1], &t[2].flatten_all()?),
                |t| linear_gelu_primitive(&t[0], &t[1], &t[2].flatten_all()?),
            )?;
            check(
                &format!("linear_relu ({m}, {kk})·({n}, {kk})ᵀ transposed={transposed}"),
                &[x.clone(), w.clone(), b.clone()],
                transposed,
                |t| linear_relu(&t[0], &t[1], &t[2].flatten_all()?),
                |t| linear_relu_primitive(&t[0], &t[1], &t[2].flatten_all()?),
            )?;
        }
    }
    let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
    assert!(linear(&x, &w, &Tensor::zeros(2, DType::F32, &Device::Cpu)?).is_err());
    assert!(linear(&x, &x, &Tensor::zeros(3, DType::F32, &Device::Cpu)?).is_err());
    Ok(())
}

#[test]
fn self_attention_matches_primitive_ops() -> Result<()> {
    for (case, (batch, seq, heads, width)) in [(1, 5, 1, 4), (2, 7, 3, 4), (3, 16, 4, 8)]
        .into_iter()
        .enumerate()
    {
        // Item b masks its last b keys.
        let mask: Vec<f32> = (0..batch * seq)
            .map(|i| {
                if i % seq + i / seq >= seq {
                    -10000.0
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (batch, 1, 1, seq), &Device::Cpu)?;
        let hidden = heads * width;
        for transposed in [false, true] {
            let seed = 180 + 10 * case as u64;
            let x = input(&[batch * seq, hidden], seed, transposed)?;
            let weight = |p| input(&[hidden, hidden], seed + 1 + p, transposed);
            let bias = |p| input(&[1, hidden], seed + 4 + p, false);
            // The key bias is a constant: its true gradient is zero (softmax ignores a shift
            // shared by a row's scores), so both versions give rounding noise there.
            let key_bias = bias(1)?.as_tensor().flatten_all()?;
            let inputs = [x, weight(0)?, bias(0)?, weight(1)?, weight(2)?, bias(2)?];
            let sizes = (batch, seq, heads);
            let biases = |t: &[Tensor]| -> Result<Vec<Tensor>> {
                Ok(vec![
                    t[2].flatten_all()?,
                    key_bias.clone(),
                    t[5].flatten_all()?,
                ])
            };
            // Weights scaled down so the scores stay moderate: a saturated softmax leaves
            // rounding noise in the gradients.
            let weights = |t: &[Tensor]| -> Result<Vec<Tensor>> {
                [1, 3, 4].iter().map(|&i| &t[i] * 0.05).collect()
            };
            check(
                &format!("self_attention {sizes:?} width {width} transposed={transposed}"),
                &inputs,
                transposed,
                |t| {
                    let (w, b) = (weights(t)?, biases(t)?);
                    let projections = [(&w[0], &b[0]), (&w[1], &b[1]), (&w[2], &b[2])];
                    self_attention(&t[0], projections, &mask, sizes, 0.35)
                },
                |t| {
                    let (w, b) = (weights(t)?, biases(t)?);
                    let projections = [(&w[0], &b[0]), (&w[1], &b[1]), (&w[2], &b[2])];
                    self_attention_primitive(&t[0], projections, &mask, sizes, 0.35)
                },
            )?;
        }
    }
    let x = Tensor::zeros((6, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((4, 4), DType::F32, &Device::Cpu)?;
    let b = Tensor::zeros(4, DType::F32, &Device::Cpu)?;
    let mask = Tensor::zeros((2, 1, 1, 3), DType::F32, &Device::Cpu)?;
    let projections = [(&w, &b), (&w, &b), (&w, &b)];
    assert!(
        self_attention(&x, projections, &mask, (2, 3, 3), 1.0).is_err(),
        "3 heads of 4"
    );
    assert!(
        self_attention(&x, projections, &mask, (3, 2, 2), 1.0).is_err(),
        "mask of 2 items"
    );
    let narrow = w.narrow(0, 0, 3)?;
    let bad = [(&w, &b), (&narrow, &b), (&w, &b)];
    assert!(
        self_attention(&x, bad, &mask, (2, 3, 2), 1.0).is_err(),
        "a (3, 4) key weight"
    );
    Ok(())
}

#[test]
fn feed_forward_matches_primitive_ops() -> Result<()> {
    for (case, (m, k, f, n)) in [(1, 3, 4, 2), (7, 16, 33, 12), (64, 32, 48, 32)]
        .into_iter()
        .enumerate()
    {
        for transposed in [false, true] {
            let seed = 200 + 10 * case as u64;
            let x = input(&[m, k], seed, transposed)?;
            let w1 = input(&[f, k], seed + 1, transposed)?;
            let b1 = input(&[1, f], seed + 2, false)?;
            let w2 = input(&[n, f], seed + 3, transposed)?;
            let b2 = input(&[1, n], seed + 4, false)?;
            let layers = |t: &[Tensor]| -> Result<[Tensor; 2]> {
                Ok([t[2].flatten_all()?, t[4].flatten_all()?])
            };
            check(
                &format!("feed_forward ({m}, {k}) → {f} → {n} transposed={transposed}"),
                &[x, w1, b1, w2, b2],
                transposed,
                |t| {
                    let [b1, b2] = layers(t)?;
                    feed_forward(&t[0], (&t[1], &b1), (&t[3], &b2))
                },
                |t| {
                    let [b1, b2] = layers(t)?;
                    feed_forward_primitive(&t[0], (&t[1], &b1), (&t[3], &b2))
                },
            )?;
        }
    }
    let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
    let b = Tensor::zeros(3, DType::F32, &Device::Cpu)?;
    assert!(
        feed_forward(&x, (&w, &b), (&w, &b)).is_err(),
        "w2 takes 4 inputs"
    );
    Ok(())
}

/// A layer norm's `(γ, β)` of width `h`: with `recoverable`, `γ` in [0.5, 1.5] and `β` in
/// [-0.3, 0.3], so a post-norm op's backward recovers `x̂` from its output; otherwise values in
/// [-3, 3] with one `γ` of zero, so it recomputes the residual sum.
fn norm_params(h: usize, seed: u64, recoverable: bool) -> Result<(Var, Var)> {
    let (gamma, beta) = (input(&[h], seed, false)?, input(&[h], seed + 1, false)?);
    if recoverable {
        let gamma = Var::from_tensor(&gamma.as_tensor().affine(1.0 / 6.0, 1.0)?)?;
        let beta = Var::from_tensor(&beta.as_tensor().affine(0.1, 0.0)?)?;
        return Ok((gamma, beta));
    }
    let mut values = gamma.as_tensor().to_vec1::<f32>()?;
    values[h / 2] = 0.0;
    Ok((Var::from_vec(values, h, &Device::Cpu)?, beta))
}

#[test]
fn linear_add_layer_norm_matches_primitive_ops() -> Result<()> {
    for (case, (m, k, n)) in [(1, 3, 5), (7, 16, 12), (64, 32, 48)]
        .into_iter()
        .enumerate()
    {
        for (transposed, recoverable) in
            [(false, true), (true, true), (false, false), (true, false)]
        {
            let seed = 400 + 10 * case as u64;
            let x = input(&[m, k], seed, transposed)?;
            let w = input(&[n, k], seed + 1, transposed)?;
            let b = input(&[n], seed + 2, false)?;
            let residual = input(&[m, n], seed + 3, transposed)?;
            let (gamma, beta) = norm_params(n, seed + 4, recoverable)?;
            check(
                &format!(
                    "linear_add_layer_norm ({m}, {k}) → {n} transposed={transposed} recoverable={recoverable}"
                ),
                &[x, w, b, residual, gamma, beta],
                transposed,
                |t| linear_add_layer_norm(&t[0], (&t[1], &t[2]), &t[3], (&t[4], &t[5]), 1e-12),
                |t| {
                    linear_add_layer_norm_primitive(
                        &t[0],
                        (&t[1], &t[2]),
                        &t[3],
                        (&t[4], &t[5]),
                        1e-12,
                    )
                },
            )?;
        }
    }
    let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
    let b = Tensor::zeros(3, DType::F32, &Device::Cpu)?;
    assert!(
        linear_add_layer_norm(&x, (&w, &b), &x, (&b, &b), 1e-12).is_err(),
        "the residual must have the output's shape"
    );
    Ok(())
}

#[test]
fn feed_forward_add_layer_norm_matches_primitive_ops() -> Result<()> {
    for (case, (m, k, f)) in [(1, 3, 4), (7, 16, 33), (64, 32, 48)]
        .into_iter()
        .enumerate()
    {
        for (transposed, recoverable) in
            [(false, true), (true, true), (false, false), (true, false)]
        {
            let seed = 500 + 10 * case as u64;
            let x = input(&[m, k], seed, transposed)?;
            let w1 = input(&[f, k], seed + 1, transposed)?;
            let b1 = input(&[f], seed + 2, false)?;
            let w2 = input(&[k, f], seed + 3, transposed)?;
            let b2 = input(&[k], seed + 4, false)?;
            let (gamma, beta) = norm_params(k, seed + 5, recoverable)?;
            check(
                &format!(
                    "feed_forward_add_layer_norm ({m}, {k}) → {f} transposed={transposed} recoverable={recoverable}"
                ),
                &[x, w1, b1, w2, b2, gamma, beta],
                transposed,
                |t| {
                    let layers = ((&t[1], &t[2]), (&t[3], &t[4]));
                    feed_forward_add_layer_norm(&t[0], layers.0, layers.1, (&t[5], &t[6]), 1e-12)
                },
                |t| {
                    let layers = ((&t[1], &t[2]), (&t[3], &t[4]));
                    feed_forward_add_layer_norm_primitive(
                        &t[0],
                        layers.0,
                        layers.1,
                        (&t[5], &t[6]),
                        1e-12,
                    )
                },
            )?;
        }
    }
    let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
    let w1 = Tensor::zeros((5, 4), DType::F32, &Device::Cpu)?;
    let b1 = Tensor::zeros(5, DType::F32, &Device::Cpu)?;
    let w2 = Tensor::zeros((3, 5), DType::F32, &Device::Cpu)?;
    let b2 = Tensor::zeros(3, DType::F32, &Device::Cpu)?;
    assert!(
        feed_forward_add_layer_norm(&x, (&w1, &b1), (&w2, &b2), (&b2, &b2), 1e-12).is_err(),
        "the block's output must have x's width to be added to it"
    );
    Ok(())
}

#[test]
fn linear_cross_entropy_matches_primitive_ops() -> Result<()> {
    for (case, (n, k, c)) in [(1, 3, 5), (7, 16, 33), (64, 32, 200)]
        .into_iter()
        .enumerate()
    {
        for transposed in [false, true] {
            let seed = 600 + 10 * case as u64;
            let x = input(&[n, k], seed, transposed)?;
            let w = input(&[c, k], seed + 1, transposed)?;
            let b = input(&[c], seed + 2, false)?;
            let labels: Vec<u32> = (0..n).map(|i| ((i * 7 + case) % c) as u32).collect();
            let labels = Tensor::from_vec(labels, n, &Device::Cpu)?;
            let name = format!("linear_cross_entropy ({n}, {k}) → {c} transposed={transposed}");
            check(
                &name,
                &[x.clone(), w.clone(), b.clone()],
                transposed,
                |t| Ok(linear_cross_entropy(&t[0], &t[1], &t[2], &labels)?.0),
                |t| Ok(linear_cross_entropy_primitive(&t[0], &t[1], &t[2], &labels)?.0),
            )?;
            let used = [as_used(&x, transposed)?, as_used(&w, transposed)?];
            let (_, fused) = linear_cross_entropy(&used[0], &used[1], b.as_tensor(), &labels)?;
            let (_, primitive) =
                linear_cross_entropy_primitive(&used[0], &used[1], b.as_tensor(), &labels)?;
            assert_eq!(
                fused.to_vec1::<u32>()?,
                primitive.to_vec1::<u32>()?,
                "{name}: predictions"
            );
        }
    }
    let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
    let b = Tensor::zeros(3, DType::F32, &Device::Cpu)?;
    let out_of_range = Tensor::new(&[0u32, 3], &Device::Cpu)?;
    let err = linear_cross_entropy(&x, &w, &b, &out_of_range).unwrap_err();
    assert!(err.to_string().contains("label 3"), "{err}");
    Ok(())
}

#[test]
fn embedding_matches_primitive_ops() -> Result<()> {
    for (case, (vocab, h, n)) in [(1, 3, 1), (6, 16, 9), (300, 32, 200)]
        .into_iter()
        .enumerate()
    {
        // Repeated ids, so rows receive several contributions.
        let ids: Vec<u32> = (0..n).map(|i| ((i * 7 + i * i) % vocab) as u32).collect();
        let ids = Tensor::new(ids, &Device::Cpu)?;
        for transposed in [false, true] {
            let table = input(&[vocab, h], 220 + case as u64, transposed)?;
            check(
                &format!("embedding ({vocab}, {h}) × {n} ids transposed={transposed}"),
                &[table],
                transposed,
                |t| embedding(&t[0], &ids),
                |t| embedding_primitive(&t[0], &ids),
            )?;
        }
    }
    let table = Tensor::zeros((4, 2), DType::F32, &Device::Cpu)?;
    let error = embedding(&table, &Tensor::new(&[1u32, 4], &Device::Cpu)?).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("id 4 at position 1 is not below 4"),
        "{error}"
    );
    Ok(())
}

#[test]
fn embedding_sum_matches_primitive_ops() -> Result<()> {
    for (case, (vocabs, h, n)) in [
        ([1, 1, 1], 3, 1),
        ([9, 4, 2], 16, 12),
        ([300, 64, 2], 32, 200),
    ]
    .into_iter()
    .enumerate()
    {
        // Each lookup's ids repeat, so rows receive several contributions.
        let ids: Vec<Tensor> = vocabs
            .iter()
            .enumerate()
            .map(|(t, &vocab)| {
                let ids: Vec<u32> = (0..n)
                    .map(|i| ((i * (7 + t) + i * i) % vocab) as u32)
                    .collect();
                Tensor::new(ids, &Device::Cpu)
            })
            .collect::<Result<_>>()?;
        for transposed in [false, true] {
            let tables: Vec<Var> = vocabs
                .iter()
                .enumerate()
                .map(|(t, &vocab)| input(&[vocab, h], 230 + 3 * case as u64 + t as u64, transposed))
                .collect::<Result<_>>()?;
            check(
                &format!("embedding_sum {vocabs:?} × {h}, {n} ids transposed={transposed}"),
                &tables,
                transposed,
                |t| embedding_sum([(&t[0], &ids[0]), (&t[1], &ids[1]), (&t[2], &ids[2])]),
                |t| embedding_sum_primitive([(&t[0], &ids[0]), (&t[1], &ids[1]), (&t[2], &ids[2])]),
            )?;
        }
    }
    let table = Tensor::zeros((4, 2), DType::F32, &Device::Cpu)?;
    let ids = Tensor::new(&[1u32, 2], &Device::Cpu)?;
    let bad = Tensor::new(&[1u32, 4], &Device::Cpu)?;
    let error = embedding_sum([(&table, &ids), (&table, &bad), (&table, &ids)]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("id 4 at position 1 is not below 4"),
        "{error}"
    );
    let narrow = Tensor::zeros((4, 3), DType::F32, &Device::Cpu)?;
    assert!(
        embedding_sum([(&table, &ids), (&narrow, &ids), (&table, &ids)]).is_err(),
        "tables of different widths"
    );
    Ok(())
}

/// Inside a [`DirectGradients`] scope the fused ops' parameters leave candle's graph: its own
/// backward no longer reaches them, [`DirectGradients::backward`] gives them the same bits as
/// the graph does outside a scope (the tied table the same values up to rounding), a
/// parameter used by two ops gets both contributions, and the scope ends with its backward.
#[test]
fn direct_gradients_leave_the_graph_with_the_same_values() -> Result<()> {
    let (n, h, f, vocab) = (12, 8, 16, 10);
    let table = input(&[vocab, h], 1, false)?;
    let positions = input(&[n, h], 2, false)?;
    let types = input(&[2, h], 3, false)?;
    let ffn = [
        input(&[f, h], 4, false)?,
        input(&[f], 5, false)?,
        input(&[h, f], 6, false)?,
        input(&[h], 7, false)?,
    ];
    let norm = [input(&[h], 8, false)?, input(&[h], 9, false)?];
    let bias = input(&[vocab], 10, false)?;
    let ids = Tensor::from_vec((0..n as u32).map(|i| i * 7 % 10).collect(), n, &Device::Cpu)?;
    let pos = Tensor::arange(0u32, n as u32, &Device::Cpu)?;
    let kinds = Tensor::from_vec((0..n as u32).map(|i| i % 2).collect(), n, &Device::Cpu)?;
    let loss = || -> Result<Tensor> {
        let x = embedding_sum([
            (table.as_tensor(), &ids),
            (positions.as_tensor(), &pos),
            (types.as_tensor(), &kinds),
        ])?;
        let [w1, b1, w2, b2] = &ffn;
        let [gamma, beta] = &norm;
        let y = feed_forward_add_layer_norm(
            &x,
            (w1.as_tensor(), b1.as_tensor()),
            (w2.as_tensor(), b2.as_tensor()),
            (gamma.as_tensor(), beta.as_tensor()),
            1e-12,
        )?;
        // The tied decoder: the word table is used a second time.
        let (losses, _) = linear_cross_entropy(&y, table.as_tensor(), bias.as_tensor(), &ids)?;
        losses.sum_all()
    };
    let vars: Vec<&Var> = [&table, &positions, &types, &bias]
        .into_iter()
        .chain(&ffn)
        .chain(&norm)
        .collect();
    let graph = loss()?.backward()?;

    // candle's own backward in a scope: the ops leave their parameters' gradients in the
    // scope (which this one drops), not in its store.
    let candle_only = {
        let _scope = DirectGradients::start();
        loss()?.backward()?
    };
    // All but the smallest embedding table, which keeps the lookups' op in the graph.
    for var in vars
        .iter()
        .filter(|v| v.as_tensor().id() != types.as_tensor().id())
    {
        assert!(
            candle_only.get(var).is_none(),
            "a parameter stayed in the graph"
        );
    }
    let direct = DirectGradients::start();
    let grads = direct.backward(&loss()?)?;
    for (i, var) in vars.iter().enumerate() {
        let (want, got) = (graph.get(var).unwrap(), grads.get(var).unwrap());
        if var.as_tensor().id() == table.as_tensor().id() {
            // The tied table's looked-up rows are added into the decoder's gradient one by
            // one, where the graph adds their sum: rounding differs in the last bit.
            assert!(relative_error(got, want)? <= 1e-6, "the tied table");
            continue;
        }
        assert_eq!(
            want.flatten_all()?.to_vec1::<f32>()?,
            got.flatten_all()?.to_vec1::<f32>()?,
            "parameter {i}"
        );
    }
    // The scope has ended: the ops take their parameters through the graph again.
    assert!(loss()?.backward()?.get(&ffn[0]).is_some());
    // An op whose only other input is outside the graph keeps its parameters in it, or its
    // backward would never run.
    let direct = DirectGradients::start();
    let [w1, b1, w2, b2] = &ffn;
    let data = table.as_tensor().detach().narrow(0, 0, 4)?;
    let y = feed_forward(
        &data,
        (w1.as_tensor(), b1.as_tensor()),
        (w2.as_tensor(), b2.as_tensor()),
    )?;
    let grads = direct.backward(&y.sum_all()?)?;
    assert!(grads.get(w1).is_some() && grads.get(b2).is_some());
    Ok(())
}
