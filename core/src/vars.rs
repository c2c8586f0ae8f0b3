//! A model's variables: created through a seeded initialiser, listed by name in a fixed order,
//! saved and loaded by name.

use std::collections::HashMap;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::error::{Error, Result};
use crate::optimization::{named_vars, NamedVar};
use crate::rng::{stable_hash, stream_rng, Stream};

/// The variables of one model, keyed by module path (`encoder.layer.0.attention.query.weight`).
#[derive(Clone)]
pub struct ModelVars {
    varmap: VarMap,
}

impl Default for ModelVars {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelVars {
    /// An empty set of variables.
    pub fn new() -> Self {
        ModelVars {
            varmap: VarMap::new(),
        }
    }

    /// A VarBuilder that creates variables in this set. Each new variable is initialised from
    /// the init stream of `seed` indexed by its name, so the same seed gives the same weights
    /// whatever order the model creates them in.
    pub fn var_builder(&self, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let backend = SeededBackend {
            varmap: self.varmap.clone(),
            seed,
        };
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
    }

    /// Every variable with its name, sorted by name.
    pub fn named_vars(&self) -> Vec<NamedVar> {
        named_vars(&self.varmap)
    }

    /// Every variable's current value, sorted by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars()
            .into_iter()
            .map(|v| (v.name, v.var.as_tensor().clone()))
            .collect()
    }

    /// Number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.named_vars().iter().map(|v| v.var.elem_count()).sum()
    }

    /// Sets every variable from `tensors` (all must be present with matching shapes; extra
    /// tensors are an error too). `origin` names the file in messages.
    pub fn load_exact(&self, tensors: &HashMap<String, Tensor>, origin: &str) -> Result<()> {
        let vars = self.named_vars();
        let unexpected: Vec<&String> = tensors
            .keys()
            .filter(|name| !vars.iter().any(|v| &v.name == *name))
            .collect();
        if !unexpected.is_empty() {
            return Err(Error::Checkpoint(format!(
                "{origin}: holds tensors this model does not have: {}; was it written by \
                 another experiment or model size?",
                list(unexpected.iter().map(|s| s.as_str()))
            )));
        }
        for v in &vars {
            let tensor = tensors.get(&v.name).ok_or_else(|| {
                Error::Checkpoint(format!(
                    "{origin}: tensor `{}` is missing; was it written by another experiment \
                     or model size?",
                    v.name
                ))
            })?;
            set_checked(v, tensor, origin)?;
        }
        Ok(())
    }
}

/// Sets `var` from `tensor` after checking the shape; the message names `origin`.
pub fn set_checked(var: &NamedVar, tensor: &Tensor, origin: &str) -> Result<()> {
    if tensor.shape() != var.var.shape() {
        return Err(Error::Checkpoint(format!(
            "{origin}: tensor `{}` has shape {:?}, the model expects {:?}",
            var.name,
            tensor.dims(),
            var.var.dims()
        )));
    }
    let value = tensor
        .to_dtype(var.var.dtype())?
        .to_device(var.var.device())?;
    var.var.set(&value)?;
    Ok(())
}

/// Joins names for a message, at most ten of them.
pub(crate) fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let shown = names
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        format!("{shown}, … ({} in all)", names.len())
    } else {
        shown
    }
}

/// Creates variables in a VarMap with values from Grove's seeded streams.
struct SeededBackend {
    varmap: VarMap,
    seed: u64,
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut vars = self.varmap.data().lock().expect("var map poisoned");
        if let Some(existing) = vars.get(name) {
            if existing.shape() != &shape {
                candle_core::bail!(
                    "variable `{name}` is created twice with shapes {:?} and {:?}",
                    existing.dims(),
                    shape.dims()
                );
            }
            return Ok(existing.as_tensor().clone());
        }
        let mut rng = stream_rng(self.seed, Stream::Init, stable_hash(name));
        let values = initial_values(&init, &shape, &mut rng)?;
        let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("variable `{name}` must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("var map poisoned")
            .contains_key(name)
    }
}

fn initial_values(init: &Init, shape: &Shape, rng: &mut impl Rng) -> candle_core::Result<Vec<f32>> {
    let n = shape.elem_count();
    let normal =
        |mean: f64, std: f64, rng: &mut dyn rand::RngCore| -> candle_core::Result<Vec<f32>> {
            let dist = Normal::new(mean, std).map_err(candle_core::Error::wrap)?;
            Ok((0..n).map(|_| dist.sample(rng) as f32).collect())
        };
    let uniform =
        |lo: f64, up: f64, rng: &mut dyn rand::RngCore| -> candle_core::Result<Vec<f32>> {
            let dist = Uniform::new(lo, up).map_err(candle_core::Error::wrap)?;
            Ok((0..n).map(|_| dist.sample(rng) as f32).collect())
        };
    match *init {
        Init::Const(value) => Ok(vec![value as f32; n]),
        Init::Randn { mean, stdev } => normal(mean, stdev, rng),
        Init::Uniform { lo, up } => uniform(lo, up, rng),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                candle_nn::init::NormalOrUniform::Normal => normal(0.0, std, rng),
                candle_nn::init::NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(-bound, bound, rng)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(seed: u64, order: &[&str]) -> ModelVars {
        let vars = ModelVars::new();
        let vb = vars.var_builder(seed, DType::F32, &Device::Cpu);
        for name in order {
            vb.get_with_hints(
                (3, 4),
                name,
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )
            .unwrap();
        }
        vars
    }

    fn values(vars: &ModelVars) -> Vec<Vec<f32>> {
        vars.tensors()
            .iter()
            .map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    #[test]
    fn same_seed_gives_same_weights_in_any_creation_order() {
        let a = build(1, &["x", "y"]);
        let b = build(1, &["y", "x"]);
        let c = build(2, &["x", "y"]);
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), values(&c));
        assert_eq!(a.named_vars()[0].name, "x");
        assert_eq!(a.parameter_count(), 24);
    }

    #[test]
    fn load_exact_reports_missing_unexpected_and_mismatched_tensors() {
        let vars = build(1, &["x"]);
        let good = HashMap::from([(
            "x".to_string(),
            Tensor::ones((3, 4), DType::F32, &Device::Cpu).unwrap(),
        )]);
        vars.load_exact(&good, "f").unwrap();
        assert_eq!(values(&vars)[0], vec![1.0; 12]);
        let err = vars
            .load_exact(&HashMap::new(), "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`x` is missing"), "{err}");
        let wrong = HashMap::from([(
            "x".to_string(),
            Tensor::ones((4, 3), DType::F32, &Device::Cpu).unwrap(),
        )]);
        let err = vars.load_exact(&wrong, "f").unwrap_err().to_string();
        assert!(err.contains("shape [4, 3]"), "{err}");
        let mut extra = good.clone();
        extra.insert(
            "z".to_string(),
            Tensor::ones(1, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = vars.load_exact(&extra, "f").unwrap_err().to_string();
        assert!(err.contains("does not have: z"), "{err}");
    }
}
