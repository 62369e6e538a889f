//! PyTorch checkpoints, read as data under [`Limits`]: the zip layout
//! `torch.save` writes since PyTorch 1.6 ([`zipped`]) and the legacy stream
//! before it ([`legacy`]).
//!
//! Both hold one pickle that describes the tensors ([`rebuild`]) and the
//! storages' bytes. The pickle is parsed by tensim's own bounded reader
//! ([`crate::pickle`]), which refuses any global outside the callables a
//! state dict needs and the plain data (numpy scalars, dtypes) a training
//! checkpoint keeps beside it; the entry that is read (`key`, or the whole
//! pickle) may name state-dict callables only. Every declared size is
//! checked against the bytes present and against the file's byte budget
//! before anything is allocated.

mod legacy;
mod rebuild;
mod zipped;

use std::collections::HashMap;
use std::rc::Rc;

pub use legacy::{is_legacy, read_legacy};
pub use rebuild::{StorageRef, TensorRef};
pub use zipped::read_zipped;

use crate::foreign::{NamedTensor, TensorSet};
use crate::pickle::{Graph, Id, Limits, PickleError, Value};
use crate::raw::Budget;

/// Callables a PyTorch state dict may name.
pub fn state_dict_callable(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        (
            "torch._utils",
            "_rebuild_tensor_v2"
                | "_rebuild_tensor"
                | "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
        ) | ("torch._tensor", "_rebuild_from_type_v2")
            | ("torch", "Tensor" | "Size")
            | ("torch.nn.parameter", "Parameter")
            | ("collections", "OrderedDict")
    ) || (module == "torch" && name.ends_with("Storage"))
}

/// Plain data a training checkpoint keeps beside its state dict (metrics as
/// numpy scalars or arrays, numpy RNG state, tensor dtypes): rebuilt from
/// values, never code. Allowed outside the entry that is read.
pub fn plain_data(module: &str, name: &str) -> bool {
    let numpy = matches!(
        module,
        "numpy" | "numpy.core.multiarray" | "numpy._core.multiarray"
    );
    (numpy && matches!(name, "scalar" | "dtype" | "ndarray" | "_reconstruct"))
        || (module, name) == ("_codecs", "encode")
        || (module == "torch" && (name.starts_with("float") || name.starts_with("int")))
}

/// What the whole stream may name.
pub fn stream_allowed(module: &str, name: &str) -> bool {
    state_dict_callable(module, name) || plain_data(module, name)
}

/// The tensors a pickle describes, grouped into checkpoints: the entry
/// `key` (or the whole pickle), split by step when it maps steps to state
/// dicts. Each tensor keeps its dotted name.
pub struct Described {
    pub groups: Vec<Group>,
}

/// One checkpoint's tensors: its step (when the file has several) and each
/// tensor's name and description.
pub type Group = (Option<u64>, Vec<(String, TensorRef)>);

/// Selects `key`, checks what it names and finds its tensors.
pub fn describe(g: &Graph, key: Option<&str>, limits: &Limits) -> Result<Described, String> {
    let selected = select(g, key)?;
    for id in g.reachable(selected) {
        if let Some((module, name)) = g.global(id) {
            if !state_dict_callable(module, name) {
                return Err(PickleError::Forbidden {
                    module: module.to_string(),
                    name: name.to_string(),
                }
                .to_string());
            }
        }
    }
    let mut groups = Vec::new();
    for (step, dict) in by_step(g, selected) {
        let mut tensors = Vec::new();
        for (name, id) in entries(g, dict, limits.max_depth)? {
            if let Some(t) =
                rebuild::tensor_ref(g, id).map_err(|e| format!("tensor `{name}`: {e}"))?
            {
                tensors.push((name, t));
            }
        }
        groups.push((step, tensors));
    }
    Ok(Described { groups })
}

fn select(g: &Graph, key: Option<&str>) -> Result<Id, String> {
    let root = g.root();
    let Some(key) = key else { return Ok(root) };
    let Value::Dict(kv) = g.get(root) else {
        return Err(format!(
            "the pickle is not a dict, so it has no entry `{key}`"
        ));
    };
    kv.iter()
        .find(|(k, _)| g.key_text(*k).as_deref() == Some(key))
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            let keys: Vec<String> = kv.iter().filter_map(|(k, _)| g.key_text(*k)).collect();
            format!(
                "no entry `{key}` at the top of the pickle; it has: {}",
                keys.join(", ")
            )
        })
}

/// A dict of step → state dict gives one group per step; anything else one.
fn by_step(g: &Graph, id: Id) -> Vec<(Option<u64>, Id)> {
    if let Value::Dict(kv) = g.get(id) {
        let steps: Option<Vec<(Option<u64>, Id)>> = kv
            .iter()
            .map(|&(k, v)| {
                let step = g.key_text(k)?.parse::<u64>().ok()?;
                matches!(g.get(v), Value::Dict(_)).then_some((Some(step), v))
            })
            .collect();
        if let Some(steps) = steps.filter(|s| !s.is_empty()) {
            return steps;
        }
    }
    vec![(None, id)]
}

/// The non-dict entries of a (nested) dict, names joined with dots; an
/// error past `max_depth` levels. Iterative, and each dict is entered once.
fn entries(g: &Graph, root: Id, max_depth: usize) -> Result<Vec<(String, Id)>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![(root, String::new(), 0usize)];
    while let Some((id, prefix, depth)) = todo.pop() {
        let Value::Dict(kv) = g.get(id) else { continue };
        if !seen.insert(id) {
            continue;
        }
        if depth >= max_depth {
            return Err(format!("dicts nested deeper than {max_depth} levels"));
        }
        for &(k, v) in kv {
            let Some(k) = g.key_text(k) else { continue };
            let name = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            match g.get(v) {
                Value::Dict(_) => todo.push((v, name, depth + 1)),
                _ => out.push((name, v)),
            }
        }
    }
    Ok(out)
}

/// Reads each storage once (`load` returns its raw bytes, exactly
/// `numel × size` of them, after they are charged to the file's budget of
/// `limits.max_tensor_bytes`) and gathers every tensor from it.
pub fn materialise(
    described: Described,
    format: &'static str,
    limits: &Limits,
    mut load: impl FnMut(&StorageRef) -> Result<Vec<u8>, String>,
) -> Result<Vec<TensorSet>, String> {
    let mut budget = Budget::new(limits.max_tensor_bytes);
    let mut storages: HashMap<String, Rc<Vec<f64>>> = HashMap::new();
    let mut sets = Vec::new();
    for (step, refs) in described.groups {
        let mut tensors = Vec::with_capacity(refs.len());
        for (name, t) in refs {
            let in_tensor = |e: String| format!("tensor `{name}`: {e}");
            let storage = match storages.get(&t.storage.key) {
                Some(s) => Rc::clone(s),
                None => {
                    budget
                        .charge(t.storage.numel, t.storage.dtype.size())
                        .map_err(in_tensor)?;
                    let raw = load(&t.storage).map_err(in_tensor)?;
                    budget.charge(t.storage.numel, 8).map_err(in_tensor)?;
                    let values = Rc::new(t.storage.dtype.decode(&raw, false));
                    storages.insert(t.storage.key.clone(), Rc::clone(&values));
                    values
                }
            };
            budget
                .charge(t.elements().map_err(in_tensor)? as u64, 8)
                .map_err(in_tensor)?;
            let values = t.gather(&storage).map_err(in_tensor)?;
            tensors.push(NamedTensor {
                name,
                shape: t.size.clone(),
                values,
                dtype: t.storage.dtype.name().to_string(),
            });
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        sets.push(TensorSet {
            tensors,
            step,
            format,
        });
    }
    sets.sort_by_key(|s| s.step);
    Ok(sets)
}
