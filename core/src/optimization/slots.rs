//! Per-variable optimizer slots (moments, momentum), keyed by variable name, with the
//! checks `Optimizer::load_state` needs.

use std::collections::HashMap;

use candle_core::{DType, Shape, Tensor};

use super::optimizer::{NamedVar, StateView};
use crate::error::{Error, Result};

/// A slot's name and the value its elements start at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SlotSpec {
    /// The slot's name (`<var name>/<name>` in checkpoints).
    pub name: &'static str,
    /// The value every element starts at (0 for moments; Adagrad's accumulator differs).
    pub initial_value: f64,
}

impl SlotSpec {
    /// A slot that starts at zero.
    pub(crate) const fn zeros(name: &'static str) -> Self {
        SlotSpec {
            name,
            initial_value: 0.0,
        }
    }
}

/// The slots of every variable that has received an update. Every variable has the same slot
/// names, in the order given at construction; slots are host f32 buffers with the variable's
/// element count (update rules run over them as slices), and tensors of the variable's shape
/// in checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    specs: Vec<SlotSpec>,
    names: Vec<&'static str>,
    by_var: HashMap<String, VarSlots>,
}

/// One variable's slot buffers and the variable's shape.
#[derive(Debug, Clone)]
struct VarSlots {
    shape: Shape,
    values: Vec<Vec<f32>>,
}

impl Slots {
    /// Empty slots as `specs` describes (none: an optimizer without state).
    pub(crate) fn new(specs: Vec<SlotSpec>) -> Self {
        Slots {
            names: specs.iter().map(|s| s.name).collect(),
            specs,
            by_var: HashMap::new(),
        }
    }

    /// The slots of `param`, created at their initial values on first use.
    pub(crate) fn get_or_init(&mut self, param: &NamedVar) -> &mut [Vec<f32>] {
        self.insert_missing([param]);
        self.by_var
            .get_mut(&param.name)
            .map(|s| s.values.as_mut_slice())
            .expect("slots were inserted above")
    }

    /// The slots of every variable of `params` (created on first use), in the same order, so
    /// they can be updated side by side. Fails if a name appears twice.
    pub(crate) fn get_many_or_init<'a>(
        &'a mut self,
        params: &[&NamedVar],
    ) -> Result<Vec<&'a mut [Vec<f32>]>> {
        self.insert_missing(params.iter().copied());
        let mut by_name: HashMap<&str, &mut VarSlots> = self
            .by_var
            .iter_mut()
            .map(|(name, slots)| (name.as_str(), slots))
            .collect();
        params
            .iter()
            .map(|p| {
                by_name
                    .remove(p.name.as_str())
                    .map(|s| s.values.as_mut_slice())
                    .ok_or_else(|| Error::Run(format!("the variable `{}` is listed twice", p.name)))
            })
            .collect()
    }

    /// Creates the slots of the variables of `params` that have none yet.
    fn insert_missing<'p>(&mut self, params: impl IntoIterator<Item = &'p NamedVar>) {
        for param in params {
            if self.by_var.contains_key(&param.name) {
                continue;
            }
            let shape = param.var.as_tensor().shape().clone();
            let values = self
                .specs
                .iter()
                .map(|spec| vec![spec.initial_value as f32; shape.elem_count()])
                .collect();
            self.by_var
                .insert(param.name.clone(), VarSlots { shape, values });
        }
    }

    /// The slots of the variable `name`, if it has any yet.
    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut [Vec<f32>]> {
        self.by_var.get_mut(name).map(|s| s.values.as_mut_slice())
    }

    /// Every slot as a view named `<var name>/<slot>`, sorted by the full name.
    pub(crate) fn views(&self) -> Vec<StateView<'_>> {
        let mut out: Vec<StateView<'_>> = self
            .by_var
            .iter()
            .flat_map(|(var, slots)| {
                self.names
                    .iter()
                    .zip(&slots.values)
                    .map(move |(slot, values)| StateView {
                        name: format!("{var}/{slot}"),
                        shape: slots.shape.dims().to_vec(),
                        values,
                    })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Replaces all slots by `state` (named as in [`Slots::state`]). Each tensor must name a
    /// variable of `params` and one of this optimizer's slots, have the variable's shape, and
    /// every variable present must have all its slots; otherwise an [`Error::Checkpoint`]
    /// naming the tensor, and nothing changes.
    pub(crate) fn load(
        &mut self,
        params: &[NamedVar],
        mut state: HashMap<String, Tensor>,
    ) -> Result<()> {
        let mut keys: Vec<String> = state.keys().cloned().collect();
        keys.sort();
        let params: HashMap<&str, &NamedVar> =
            params.iter().map(|p| (p.name.as_str(), p)).collect();
        // Per variable: its shape and each slot's values, once read.
        type Partial = (Shape, Vec<Option<Vec<f32>>>);
        let mut by_var: HashMap<String, Partial> = HashMap::new();
        for key in keys {
            let tensor = state.remove(&key).expect("key taken from the map");
            let (var_name, slot) = key.rsplit_once('/').unwrap_or((key.as_str(), ""));
            let Some(index) = self.names.iter().position(|n| *n == slot) else {
                return Err(unknown_slot(&key, slot, &self.names));
            };
            let Some(param) = params.get(var_name) else {
                return Err(Error::Checkpoint(format!(
                    "optimizer state tensor `{key}`: there is no trainable variable named \
                     `{var_name}`"
                )));
            };
            let var = param.var.as_tensor();
            if tensor.dims() != var.dims() {
                return Err(Error::Checkpoint(format!(
                    "optimizer state tensor `{key}`: shape {:?} differs from variable \
                     `{var_name}` of shape {:?}",
                    tensor.dims(),
                    var.dims()
                )));
            }
            let values = tensor
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let (_, slots) = by_var
                .entry(var_name.to_string())
                .or_insert_with(|| (var.shape().clone(), vec![None; self.names.len()]));
            slots[index] = Some(values);
        }
        let mut complete = HashMap::with_capacity(by_var.len());
        for (var_name, (shape, slots)) in by_var {
            let mut values = Vec::with_capacity(slots.len());
            for (slot, slot_values) in self.names.iter().zip(slots) {
                let Some(slot_values) = slot_values else {
                    return Err(Error::Checkpoint(format!(
                        "optimizer state tensor `{var_name}/{slot}` is missing while other \
                         slots of `{var_name}` are present"
                    )));
                };
                values.push(slot_values);
            }
            complete.insert(var_name, VarSlots { shape, values });
        }
        self.by_var = complete;
        Ok(())
    }
}

fn unknown_slot(key: &str, slot: &str, names: &[&str]) -> Error {
    let allowed = if names.is_empty() {
        "this optimizer keeps no per-variable state".to_string()
    } else {
        format!("this optimizer's slots are {names:?}")
    };
    Error::Checkpoint(format!(
        "optimizer state tensor `{key}`: unknown slot `{slot}` ({allowed}; was the checkpoint \
         written with a different optimizer config?)"
    ))
}
