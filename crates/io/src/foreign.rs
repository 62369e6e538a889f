//! Checkpoints researchers already have: PyTorch `.pt`/`.pth` (zip + pickle),
//! `.npz` and plain safetensors, read into named f64 tensors.
//!
//! Pickles are parsed by candle's restricted pickle machine, which builds a
//! tree of objects and never runs code. tensim then refuses any pickle that
//! names a callable other than the few PyTorch uses to rebuild tensors, so a
//! malicious file is reported, not half-loaded. Beside the state dict a
//! training checkpoint may keep plain data (optimizer state, RNG state,
//! metrics as numpy scalars and arrays); with a `key` only that entry is
//! read, and anything else naming another callable refuses the file. f16, bf16, f32
//! and f64 tensors are accepted and converted to f64; integer tensors (a
//! norm's batch counter, say) are kept, converted, but are never weights.

use std::io::{BufReader, Read};
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use crate::checkpoint::CheckpointError;

/// One tensor of a foreign file, converted to f64 (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    /// Dtype on disk (`f16`, `bf16`, `f32`, `f64`; `i64`, `u8`, … for
    /// integer buffers).
    pub dtype: String,
}

/// The floating-point dtypes a weight may have on disk.
const FLOAT_DTYPES: [&str; 4] = ["f16", "bf16", "f32", "f64"];

impl NamedTensor {
    /// Whether the tensor is floating point on disk (only those are weights).
    pub fn is_float(&self) -> bool {
        FLOAT_DTYPES.contains(&self.dtype.as_str())
    }
}

/// The tensors of one checkpoint (a file may hold several, keyed by step).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSet {
    pub tensors: Vec<NamedTensor>,
    /// Step, when the file maps steps to state dicts.
    pub step: Option<u64>,
    /// What the file was: "PyTorch .pt", "npz", "safetensors".
    pub format: &'static str,
}

impl TensorSet {
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Distinct on-disk dtypes of the floating-point tensors (the weights),
    /// for the "converted" note.
    pub fn dtypes(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .tensors
            .iter()
            .filter(|t| t.is_float())
            .map(|t| t.dtype.clone())
            .collect();
        d.sort();
        d.dedup();
        d
    }
}

fn fail(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The dtypes read: the float weights and the integer buffers PyTorch
/// stores beside them (8-bit floats and narrower are refused).
fn dtype_name(d: DType) -> Option<&'static str> {
    match d {
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => Some(d.as_str()),
        DType::U8 | DType::U32 | DType::I16 | DType::I32 | DType::I64 => Some(d.as_str()),
        _ => None,
    }
}

fn to_named(path: &Path, name: String, t: &Tensor) -> Result<NamedTensor, CheckpointError> {
    let Some(dtype) = dtype_name(t.dtype()) else {
        return Err(fail(
            path,
            format!("tensor `{name}` has dtype {:?}; only f16, bf16, f32 and f64 weights (and integer buffers) are read", t.dtype()),
        ));
    };
    let values = t
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| fail(path, format!("tensor `{name}`: {e}")))?;
    Ok(NamedTensor {
        name,
        shape: t.dims().to_vec(),
        values,
        dtype: dtype.to_string(),
    })
}

/// Reads every checkpoint in a foreign file. `key` selects a nested state
/// dict in a pickle (`state_dict`, `model`, …).
pub fn read_tensor_sets(path: &Path, key: Option<&str>) -> Result<Vec<TensorSet>, CheckpointError> {
    let mut head = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| fail(path, format!("cannot read: {e}")))?;
    if n >= 4 && &head[..4] == b"PK\x03\x04" {
        return match zip_format(path)? {
            Some(PYTORCH) => read_pt(path, key),
            Some(_) => read_npz(path),
            None => Err(fail(path, "a zip archive that is neither a PyTorch checkpoint (no data.pkl) nor an .npz (no .npy)")),
        };
    }
    if n == 8 && u64::from_le_bytes(head) < 100_000_000 {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| fail(path, format!("not a valid safetensors file ({e})")))?;
        let mut named: Vec<NamedTensor> = tensors
            .iter()
            .map(|(k, t)| to_named(path, k.clone(), t))
            .collect::<Result<_, _>>()?;
        named.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(vec![TensorSet {
            tensors: named,
            step: None,
            format: "safetensors",
        }]);
    }
    Err(fail(
        path,
        "unrecognised file: expected a PyTorch .pt/.pth (zip), an .npz or a safetensors file",
    ))
}

const PYTORCH: &str = "PyTorch .pt";

/// `"PyTorch .pt"` or `"npz"` for a zip archive holding a pickle or `.npy`
/// files, from its entry names alone; `None` for another archive.
pub fn zip_format(path: &Path) -> Result<Option<&'static str>, CheckpointError> {
    let names = zip_names(path)?;
    if names.iter().any(|n| n.ends_with("data.pkl")) {
        return Ok(Some(PYTORCH));
    }
    Ok(names.iter().any(|n| n.ends_with(".npy")).then_some("npz"))
}

fn zip_names(path: &Path) -> Result<Vec<String>, CheckpointError> {
    let file = std::fs::File::open(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| fail(path, format!("not a valid zip archive ({e})")))?;
    Ok(zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect())
}

fn read_npz(path: &Path) -> Result<Vec<TensorSet>, CheckpointError> {
    let tensors =
        Tensor::read_npz(path).map_err(|e| fail(path, format!("cannot read .npz: {e}")))?;
    let mut named: Vec<NamedTensor> = tensors
        .iter()
        .map(|(k, t)| to_named(path, k.strip_suffix(".npy").unwrap_or(k).to_string(), t))
        .collect::<Result<_, _>>()?;
    named.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(vec![TensorSet {
        tensors: named,
        step: None,
        format: "npz",
    }])
}

/// Callables a PyTorch state dict may name.
fn allowed(module: &str, class: &str) -> bool {
    matches!(
        (module, class),
        ("torch._utils", "_rebuild_tensor_v2")
            | ("torch._utils", "_rebuild_parameter")
            | ("torch._tensor", "_rebuild_from_type_v2")
            | ("torch", "Tensor")
            | ("torch.nn.parameter", "Parameter")
            | ("torch", "Size")
            | ("collections", "OrderedDict")
    ) || (module == "torch" && class.ends_with("Storage"))
}

/// Plain data a training checkpoint keeps beside its state dict (metrics
/// as numpy scalars or arrays, numpy RNG state, tensor dtypes): rebuilt from
/// values, never code. Allowed outside the state dict that is read.
fn plain_data(module: &str, class: &str) -> bool {
    let numpy = matches!(
        module,
        "numpy" | "numpy.core.multiarray" | "numpy._core.multiarray"
    );
    (numpy && matches!(class, "scalar" | "dtype" | "ndarray" | "_reconstruct"))
        || (module, class) == ("_codecs", "encode")
        || (module == "torch" && (class.starts_with("float") || class.starts_with("int")))
}

/// Refuses an object that names a callable `allowed` does not accept.
fn check_allowed(
    path: &Path,
    obj: &Object,
    allowed: &dyn Fn(&str, &str) -> bool,
) -> Result<(), CheckpointError> {
    let check = |o| check_allowed(path, o, allowed);
    match obj {
        Object::Class { module_name, class_name } if !allowed(module_name, class_name) => Err(fail(
            path,
            format!(
                "the pickle references `{module_name}.{class_name}`, which is not part of a PyTorch state dict; \
                 tensim never executes pickled code and refuses such files (save `model.state_dict()` instead)"
            ),
        )),
        Object::Tuple(v) | Object::List(v) => v.iter().try_for_each(check),
        Object::Dict(kv) => kv.iter().try_for_each(|(k, v)| {
            check(k)?;
            check(v)
        }),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            check(callable)?;
            check(args)
        }
        Object::PersistentLoad(o) => check(o),
        _ => Ok(()),
    }
}

fn key_text(k: &Object) -> Option<String> {
    match k {
        Object::Unicode(s) => Some(s.clone()),
        Object::Int(i) => Some(i.to_string()),
        Object::Long(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Tensor entries of a (possibly nested) dict, names joined with dots.
fn collect_tensors(obj: &Object, prefix: &str, out: &mut Vec<(String, Object)>) {
    if let Object::Dict(kv) = obj {
        for (k, v) in kv {
            let Some(k) = key_text(k) else { continue };
            let name = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Object::Dict(_) => collect_tensors(v, &name, out),
                _ => out.push((name, v.clone())),
            }
        }
    }
}

fn read_pt(path: &Path, key: Option<&str>) -> Result<Vec<TensorSet>, CheckpointError> {
    let file = std::fs::File::open(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| fail(path, format!("not a valid zip archive ({e})")))?;
    let pkl = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| fail(path, "no data.pkl in the archive"))?;
    let dir = pkl.strip_suffix(".pkl").unwrap_or(&pkl).to_string();
    let obj = {
        let entry = zip
            .by_name(&pkl)
            .map_err(|e| fail(path, format!("{pkl}: {e}")))?;
        let mut stack = Stack::empty();
        stack
            .read_loop(&mut BufReader::new(entry))
            .map_err(|e| fail(path, format!("cannot parse the pickle: {e}")))?;
        stack
            .finalize()
            .map_err(|e| fail(path, format!("cannot parse the pickle: {e}")))?
    };
    // Anywhere in the file: state-dict callables and plain data only.
    check_allowed(path, &obj, &|m, c| allowed(m, c) || plain_data(m, c))?;
    let obj = match key {
        None => obj,
        Some(key) => match obj {
            Object::Dict(kv) => {
                let keys: Vec<String> = kv.iter().filter_map(|(k, _)| key_text(k)).collect();
                kv.into_iter()
                    .find(|(k, _)| key_text(k).as_deref() == Some(key))
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        fail(
                            path,
                            format!(
                                "no entry `{key}` at the top of the pickle; it has: {}",
                                keys.join(", ")
                            ),
                        )
                    })?
            }
            _ => {
                return Err(fail(
                    path,
                    format!("the pickle is not a dict, so it has no entry `{key}`"),
                ))
            }
        },
    };
    // What is read: a state dict's callables only.
    check_allowed(path, &obj, &allowed)?;
    // A dict of step → state dict holds several checkpoints.
    let steps: Option<Vec<(u64, &Object)>> = match &obj {
        Object::Dict(kv) if !kv.is_empty() => kv
            .iter()
            .map(
                |(k, v)| match (key_text(k).and_then(|t| t.parse::<u64>().ok()), v) {
                    (Some(step), Object::Dict(_)) => Some((step, v)),
                    _ => None,
                },
            )
            .collect(),
        _ => None,
    };
    let groups: Vec<(Option<u64>, &Object)> = match &steps {
        Some(s) => s.iter().map(|(k, v)| (Some(*k), *v)).collect(),
        None => vec![(None, &obj)],
    };
    let mut sets = Vec::with_capacity(groups.len());
    for (step, group) in groups {
        let mut entries = Vec::new();
        collect_tensors(group, "", &mut entries);
        let mut tensors = Vec::new();
        for (name, value) in entries {
            let info = value
                .into_tensor_info(Object::Unicode(name.clone()), Path::new(&dir))
                .map_err(|e| fail(path, format!("tensor `{name}`: {e}")))?;
            let Some(info) = info else { continue };
            let mut reader = zip.by_name(&info.path).map_err(|e| {
                fail(
                    path,
                    format!("tensor `{name}`: storage {} is missing ({e})", info.path),
                )
            })?;
            if !info.layout.is_contiguous() {
                return Err(fail(
                    path,
                    format!(
                        "tensor `{name}` is stored non-contiguously; save it with `.contiguous()`"
                    ),
                ));
            }
            let skip = info.layout.start_offset() as u64;
            std::io::copy(&mut reader.by_ref().take(skip), &mut std::io::sink())
                .map_err(|e| fail(path, format!("tensor `{name}`: {e}")))?;
            let shape = info.layout.shape().dims().to_vec();
            let mut bytes =
                vec![0u8; info.layout.shape().elem_count() * info.dtype.size_in_bytes()];
            reader
                .read_exact(&mut bytes)
                .map_err(|e| fail(path, format!("tensor `{name}`: truncated storage ({e})")))?;
            let t = Tensor::from_raw_buffer(&bytes, info.dtype, &shape, &Device::Cpu)
                .map_err(|e| fail(path, format!("tensor `{name}`: {e}")))?;
            tensors.push(to_named(path, name, &t)?);
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        sets.push(TensorSet {
            tensors,
            step,
            format: PYTORCH,
        });
    }
    sets.sort_by_key(|s| s.step);
    Ok(sets)
}
