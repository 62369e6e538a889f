//! Checkpoints researchers already have: PyTorch `.pt`/`.pth` (the zip
//! layout and the legacy stream), `.npz` (stored or compressed) and plain
//! safetensors, read into named f64 tensors under a byte budget
//! ([`Limits`]).
//!
//! Pickles are parsed by tensim's own bounded reader ([`crate::pickle`]),
//! which never runs code and refuses a file whose pickle names any callable
//! other than the few PyTorch uses to rebuild tensors and the plain data
//! (numpy scalars and arrays, dtypes) a training checkpoint keeps beside
//! its state dict; the entry that is read (`key`, or the whole pickle) may
//! name the tensor callables only ([`crate::pytorch`]). f16, bf16, f32 and
//! f64 tensors are converted to f64; integer tensors (a norm's batch
//! counter, say) are kept, converted, but are never weights.

use std::io::{BufReader, Read};
use std::path::Path;

use crate::checkpoint::CheckpointError;
use crate::pickle::Limits;
use crate::raw::{element_count, Budget, RawDtype};
use crate::{npy, pytorch};

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
    CheckpointError::new(path, reason)
}

/// Reads every checkpoint in a foreign file under the default [`Limits`].
/// `key` selects a nested state dict in a pickle (`state_dict`, `model`, …).
pub fn read_tensor_sets(path: &Path, key: Option<&str>) -> Result<Vec<TensorSet>, CheckpointError> {
    read_tensor_sets_with(path, key, &Limits::default())
}

/// [`read_tensor_sets`] under explicit limits.
pub fn read_tensor_sets_with(
    path: &Path,
    key: Option<&str>,
    limits: &Limits,
) -> Result<Vec<TensorSet>, CheckpointError> {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|f| f.take(16).read(&mut head))
        .map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        return match zip_format(path)? {
            Some(PYTORCH) => pytorch::read_zipped(path, key, limits),
            Some(_) => npy::read_npz(path, limits),
            None => Err(fail(path, "a zip archive that is neither a PyTorch checkpoint (no data.pkl) nor an .npz (no .npy)")),
        };
    }
    if pytorch::is_legacy(head) {
        return pytorch::read_legacy(path, key, limits);
    }
    if n >= 8 && u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) < 100_000_000 {
        return read_safetensors(path, limits);
    }
    Err(fail(
        path,
        "unrecognised file: expected a PyTorch .pt/.pth (zip or legacy), an .npz or a safetensors file",
    ))
}

pub(crate) const PYTORCH: &str = "PyTorch .pt";

/// `"PyTorch .pt"` or `"npz"` for a zip archive holding a pickle or `.npy`
/// files, from its entry names alone; `None` for another archive.
pub fn zip_format(path: &Path) -> Result<Option<&'static str>, CheckpointError> {
    let file = std::fs::File::open(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| fail(path, format!("not a valid zip archive ({e})")))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    if names.iter().any(|n| n.ends_with("data.pkl")) {
        return Ok(Some(PYTORCH));
    }
    Ok(names.iter().any(|n| n.ends_with(".npy")).then_some("npz"))
}

/// The element type of a safetensors dtype tensim reads.
fn safetensors_dtype(d: safetensors::Dtype) -> Option<RawDtype> {
    use safetensors::Dtype as D;
    Some(match d {
        D::F16 => RawDtype::F16,
        D::BF16 => RawDtype::BF16,
        D::F32 => RawDtype::F32,
        D::F64 => RawDtype::F64,
        D::BOOL => RawDtype::Bool,
        D::U8 => RawDtype::U8,
        D::I8 => RawDtype::I8,
        D::I16 => RawDtype::I16,
        D::U16 => RawDtype::U16,
        D::I32 => RawDtype::I32,
        D::U32 => RawDtype::U32,
        D::I64 => RawDtype::I64,
        D::U64 => RawDtype::U64,
        _ => return None,
    })
}

fn read_safetensors(path: &Path, limits: &Limits) -> Result<Vec<TensorSet>, CheckpointError> {
    let size = std::fs::metadata(path)
        .map_err(|e| fail(path, format!("cannot read: {e}")))?
        .len();
    let mut budget = Budget::new(limits.max_tensor_bytes);
    budget.charge(size, 1).map_err(|e| fail(path, e))?;
    let bytes = std::fs::read(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| fail(path, format!("not a valid safetensors file ({e})")))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let dtype = safetensors_dtype(view.dtype()).ok_or_else(|| {
            fail(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}; only floats (and integer buffers) are read",
                    view.dtype()
                ),
            )
        })?;
        let n = element_count(view.shape())
            .ok_or_else(|| fail(path, format!("tensor `{name}`: shape overflows")))?;
        budget
            .charge(n as u64, 8)
            .map_err(|e| fail(path, format!("tensor `{name}`: {e}")))?;
        tensors.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            values: dtype.decode(view.data(), false),
            dtype: dtype.name().to_string(),
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(vec![TensorSet {
        tensors,
        step: None,
        format: "safetensors",
    }])
}
