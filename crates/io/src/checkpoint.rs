//! Self-describing checkpoints of any [`Network`]: safetensors files whose
//! header metadata declares the network's kind and shape, so every file says
//! what it is. One [`save_checkpoint`] and one [`load_checkpoint`] serve
//! both kinds.
//!
//! Metadata keys (all strings, as safetensors requires):
//! * `format`: `tensim-checkpoint/2` (files of format 1, written before
//!   transformers had per-group biases, MLP-only blocks and their own
//!   output width, still load)
//! * `kind`: absent (or `sequential`) for a sequential model, `transformer`
//!   for a transformer
//! * `architecture`: the shape as JSON ([`crate::shape_json`])
//! * `dtype`: `f32` or `f64`, the dtype of every tensor
//! * optional `step`, `phase`, `label`
//!
//! Tensors are named as [`tensim_core::network::NetworkShape::parameter_specs`] says
//! (`layers.0.left.weight`, `blocks.0.attn.q1.weight`, …) in PyTorch layout
//! `[out, in]`. Loading checks every tensor's presence, dtype and shape
//! against the declared shape and rejects NaN/Inf, naming the file and the
//! tensor.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tensim_core::model::ParameterSpec;
use tensim_core::network::{Network, NetworkKind};
use tensim_core::Model;

use crate::atomic::write_atomic;
use crate::shape_json::{shape_from_json, shape_to_json};

/// Value of the `format` metadata key that this version writes.
pub const FORMAT: &str = "tensim-checkpoint/2";

/// The `format` of files written before format 2 (still read).
pub const FORMAT_V1: &str = "tensim-checkpoint/1";

/// The metadata key that says which kind of model a file holds.
pub const KIND_KEY: &str = "kind";

/// `kind` of a transformer checkpoint.
pub const KIND_TRANSFORMER: &str = "transformer";

/// `kind` a sequential checkpoint may state (the writer leaves the key out,
/// as files did before transformers existed).
pub const KIND_SEQUENTIAL: &str = "sequential";

/// Floating-point type of the tensors on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredDtype {
    F32,
    F64,
}

impl StoredDtype {
    pub fn name(self) -> &'static str {
        match self {
            StoredDtype::F32 => "f32",
            StoredDtype::F64 => "f64",
        }
    }
    fn safetensors(self) -> Dtype {
        match self {
            StoredDtype::F32 => Dtype::F32,
            StoredDtype::F64 => Dtype::F64,
        }
    }
}

/// Where a checkpoint sits in training.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointMeta {
    pub step: Option<u64>,
    pub phase: Option<String>,
    pub label: Option<String>,
}

/// A loaded checkpoint: a network of either kind and where it sits in training.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub network: Network,
    pub meta: CheckpointMeta,
    pub dtype: StoredDtype,
    /// Where the weights came from: "tensim safetensors (f32)", "PyTorch .pt (f16, converted to f64)", …
    pub source: String,
}

/// Why a checkpoint could not be read or written; always names the file.
#[derive(Debug)]
pub struct CheckpointError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for CheckpointError {}

impl CheckpointError {
    /// The error `reason` about the file at `path`.
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        CheckpointError {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

fn fail<T>(path: &Path, reason: impl Into<String>) -> Result<T, CheckpointError> {
    Err(CheckpointError::new(path, reason))
}

/// The metadata of a checkpoint file, read before any tensor.
pub(crate) struct Header {
    /// The raw metadata (every value a string).
    pub info: HashMap<String, String>,
    pub dtype: StoredDtype,
    pub meta: CheckpointMeta,
    /// The format version (1 or 2).
    pub version: u32,
}

impl Header {
    /// The declared model kind: `None` for the sequential models (no `kind` key).
    pub fn kind(&self) -> Option<&str> {
        self.info.get(KIND_KEY).map(String::as_str)
    }

    /// The `architecture` JSON.
    pub fn architecture(&self, path: &Path) -> Result<&str, CheckpointError> {
        match self.info.get("architecture") {
            Some(a) => Ok(a),
            None => fail(path, "metadata lacks `architecture`"),
        }
    }
}

/// The file's bytes.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })
}

/// Parses a safetensors file and its tensim metadata (`format`, `dtype`, `step`, `phase`, `label`).
pub(crate) fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(SafeTensors<'a>, Header), CheckpointError> {
    let tensors = match SafeTensors::deserialize(bytes) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                path,
                format!("not a valid safetensors file ({e}); is it truncated or another format?"),
            )
        }
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: format!("bad safetensors header: {e}"),
    })?;
    let info = header.metadata().clone().unwrap_or_default();
    let version = match info.get("format") {
        Some(f) if f == FORMAT => 2,
        Some(f) if f == FORMAT_V1 => 1,
        Some(f) => {
            return fail(
                path,
                format!("metadata `format` is `{f}`, expected `{FORMAT}` or `{FORMAT_V1}` (written by a newer tensim?)"),
            )
        }
        None => {
            return fail(
                path,
                format!(
                    "no `format: {FORMAT}` in the safetensors metadata: not a tensim checkpoint (it has {} tensors and no declared architecture)",
                    tensors.len()
                ),
            )
        }
    };
    let dtype = match info.get("dtype").map(String::as_str) {
        Some("f32") => StoredDtype::F32,
        Some("f64") => StoredDtype::F64,
        other => {
            return fail(
                path,
                format!("metadata `dtype` must be `f32` or `f64`, found {other:?}"),
            )
        }
    };
    let step = match info.get("step") {
        None => None,
        Some(s) => match s.parse() {
            Ok(v) => Some(v),
            Err(_) => return fail(path, format!("metadata `step` is not an integer: `{s}`")),
        },
    };
    let meta = CheckpointMeta {
        step,
        phase: info.get("phase").cloned(),
        label: info.get("label").cloned(),
    };
    Ok((
        tensors,
        Header {
            info,
            dtype,
            meta,
            version,
        },
    ))
}

/// Every tensor the specs declare, checked for presence, dtype and shape
/// (and no tensor beyond them), decoded to f64 in spec order; the network's
/// constructor checks finiteness, naming the tensor.
pub(crate) fn read_parameters(
    path: &Path,
    tensors: &SafeTensors<'_>,
    specs: &[ParameterSpec],
    dtype: StoredDtype,
) -> Result<Vec<Vec<f64>>, CheckpointError> {
    let mut values = Vec::with_capacity(specs.len());
    for spec in specs {
        let view = match tensors.tensor(&spec.name) {
            Ok(v) => v,
            Err(_) => {
                return fail(
                    path,
                    format!(
                        "tensor `{}` is missing: the declared architecture needs shape {:?}",
                        spec.name, spec.shape
                    ),
                )
            }
        };
        if view.dtype() != dtype.safetensors() {
            return fail(
                path,
                format!(
                    "tensor `{}`: expected dtype {}, found {:?}",
                    spec.name,
                    dtype.name(),
                    view.dtype()
                ),
            );
        }
        if view.shape() != spec.shape.as_slice() {
            return fail(
                path,
                format!(
                    "tensor `{}`: expected shape {:?}, found {:?}",
                    spec.name,
                    spec.shape,
                    view.shape()
                ),
            );
        }
        // Finiteness is checked once, by the network's constructor.
        values.push(decode(view.dtype(), view.data()));
    }
    let mut extra: Vec<&str> = tensors
        .names()
        .into_iter()
        .filter(|n| !specs.iter().any(|s| s.name == *n))
        .collect();
    extra.sort_unstable();
    if let Some(name) = extra.first() {
        return fail(
            path,
            format!("tensor `{name}` is not part of the declared architecture"),
        );
    }
    Ok(values)
}

/// Writes tensors (spec order) and metadata as a safetensors file, atomically.
pub(crate) fn write_file(
    path: &Path,
    mut info: HashMap<String, String>,
    specs: &[ParameterSpec],
    parameters: &[Vec<f64>],
    meta: &CheckpointMeta,
    dtype: StoredDtype,
) -> Result<(), CheckpointError> {
    if specs.len() != parameters.len() {
        return fail(
            path,
            format!(
                "the model has {} parameter tensors but its declared architecture {} (inconsistent biases?)",
                parameters.len(),
                specs.len()
            ),
        );
    }
    for (spec, values) in specs.iter().zip(parameters) {
        let expected: usize = spec.shape.iter().product();
        if values.len() != expected {
            return fail(
                path,
                format!(
                    "tensor `{}`: {} values for the declared shape {:?}",
                    spec.name,
                    values.len(),
                    spec.shape
                ),
            );
        }
    }
    info.insert("format".to_string(), FORMAT.to_string());
    info.insert("dtype".to_string(), dtype.name().to_string());
    if let Some(step) = meta.step {
        info.insert("step".to_string(), step.to_string());
    }
    if let Some(phase) = &meta.phase {
        info.insert("phase".to_string(), phase.clone());
    }
    if let Some(label) = &meta.label {
        info.insert("label".to_string(), label.clone());
    }
    let buffers: Vec<Vec<u8>> = parameters
        .iter()
        .map(|values| match dtype {
            StoredDtype::F32 => values
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
            StoredDtype::F64 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        })
        .collect();
    let mut views = Vec::with_capacity(specs.len());
    for (spec, bytes) in specs.iter().zip(&buffers) {
        let view =
            TensorView::new(dtype.safetensors(), spec.shape.clone(), bytes).map_err(|e| {
                CheckpointError {
                    path: path.to_path_buf(),
                    reason: format!("tensor `{}`: {e}", spec.name),
                }
            })?;
        views.push((spec.name.clone(), view));
    }
    let bytes = safetensors::serialize(views, Some(info))
        .map_err(|e| e.to_string())
        .and_then(canonical_header)
        .map_err(|e| CheckpointError {
            path: path.to_path_buf(),
            reason: format!("cannot serialise: {e}"),
        })?;
    write_atomic(path, |w| w.write_all(&bytes)).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: format!("cannot write: {e}"),
    })
}

/// `file` (safetensors) with its header's keys in sorted order, so that the
/// same network and metadata always give the same bytes (safetensors
/// writes the metadata map in a hash order that changes from process to
/// process). Data offsets are relative to the data, so only the header
/// changes: re-serialised, padded with spaces to 8 bytes as safetensors does.
fn canonical_header(file: Vec<u8>) -> Result<Vec<u8>, String> {
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&file[8..8 + n]).map_err(|e| e.to_string())?;
    let sorted: BTreeMap<&String, serde_json::Value> =
        header.iter().map(|(k, v)| (k, sort_keys(v))).collect();
    let mut text = serde_json::to_vec(&sorted).map_err(|e| e.to_string())?;
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + file.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&file[8 + n..]);
    Ok(out)
}

/// `value` with every object's keys in sorted order.
fn sort_keys(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, sort_keys(v))).collect();
            serde_json::to_value(sorted).expect("a map of JSON values")
        }
        other => other.clone(),
    }
}

/// Saves a network of either kind as a self-describing safetensors file,
/// atomically (a failed write leaves no file).
pub fn save_checkpoint(
    path: &Path,
    network: &Network,
    meta: &CheckpointMeta,
    dtype: StoredDtype,
) -> Result<(), CheckpointError> {
    let shape = network.shape();
    let mut info = HashMap::new();
    if network.kind() == NetworkKind::Transformer {
        info.insert(KIND_KEY.to_string(), KIND_TRANSFORMER.to_string());
    }
    info.insert("architecture".to_string(), shape_to_json(&shape));
    write_file(
        path,
        info,
        &shape.parameter_specs(),
        &network.parameters(),
        meta,
        dtype,
    )
}

fn decode(dtype: Dtype, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes"))))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        _ => unreachable!("dtype checked before decoding"),
    }
}

/// Whether the file at `path` declares itself a tensim checkpoint (a
/// safetensors header whose metadata has `format: tensim-checkpoint/…`),
/// whatever else is wrong with it: such a file that does not load is a
/// broken tensim file, not a foreign one.
pub fn claims_tensim_format(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    SafeTensors::read_metadata(&bytes).is_ok_and(|(_, header)| {
        header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .is_some_and(|f| f.starts_with("tensim-checkpoint/"))
    })
}

/// Loads a tensim checkpoint of either kind (`kind: transformer` in the
/// metadata, else a sequential model), checking every tensor.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = read_bytes(path)?;
    let (tensors, header) = parse(path, &bytes)?;
    let kind = match header.kind() {
        None | Some(KIND_SEQUENTIAL) => NetworkKind::Sequential,
        Some(KIND_TRANSFORMER) => NetworkKind::Transformer,
        Some(other) => {
            return fail(
                path,
                format!(
                    "metadata `kind` is `{other}`, expected `{KIND_TRANSFORMER}` or none (a sequential model)"
                ),
            )
        }
    };
    let shape = match shape_from_json(kind, header.architecture(path)?, header.version) {
        Ok(s) => s,
        Err(e) => return fail(path, format!("metadata `architecture` is invalid: {e}")),
    };
    let values = read_parameters(path, &tensors, &shape.parameter_specs(), header.dtype)?;
    let network = shape.from_parameters(values).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let kind_note = match kind {
        NetworkKind::Sequential => String::new(),
        NetworkKind::Transformer => ", transformer".to_string(),
    };
    Ok(Checkpoint {
        network,
        meta: header.meta,
        dtype: header.dtype,
        source: format!("tensim safetensors ({}{kind_note})", header.dtype.name()),
    })
}

impl Checkpoint {
    /// The sequential model, or an error naming `path` and the kind found.
    pub fn sequential(&self, path: &Path) -> Result<&Model, CheckpointError> {
        self.network.as_sequential().map_err(|e| CheckpointError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Whether `path` is a safetensors file whose metadata has a `format` key:
/// a tensim checkpoint (of whatever version), as opposed to a foreign file
/// that needs an architecture spec. Reads only the header.
pub(crate) fn is_tensim_checkpoint(path: &Path) -> bool {
    use std::io::Read;
    /// Larger headers are not tensim's (it writes a few kilobytes).
    const MAX_HEADER: u64 = 1 << 26;
    let read_header = || -> Option<serde_json::Value> {
        let mut file = std::fs::File::open(path).ok()?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).ok()?;
        let len = u64::from_le_bytes(len);
        if len > MAX_HEADER {
            return None;
        }
        let mut header = vec![0u8; len as usize];
        file.read_exact(&mut header).ok()?;
        serde_json::from_slice(&header).ok()
    };
    read_header().is_some_and(|h| h["__metadata__"]["format"].is_string())
}
