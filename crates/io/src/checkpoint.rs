//! Self-describing checkpoints: safetensors files whose header metadata
//! declares the architecture, so every file says what it is.
//!
//! Metadata keys (all strings, as safetensors requires):
//! * `format`: `tensim-checkpoint/1`
//! * `architecture`: JSON, e.g.
//!   `{"layers":[{"kind":"bilinear","input":784,"hidden":64,"output":10,
//!   "left_bias":false,"right_bias":false,"down_bias":false,"residual_scale":1.0}]}`
//! * `dtype`: `f32` or `f64`, the dtype of every tensor
//! * optional `step`, `phase`, `label`
//! * optional `kind`: absent (or `sequential`) for the sequential models
//!   above; `transformer` for a [`tensim_core::transformer::Transformer`],
//!   whose `architecture` is described in [`crate::transformer_checkpoint`]
//!
//! Tensors are named as [`tensim_core::Architecture::parameter_specs`] says
//! (`layers.0.left.weight`, …) in PyTorch layout `[out, in]`. Loading checks
//! every tensor's presence, dtype and shape against the declared architecture
//! and rejects NaN/Inf, naming the file and the tensor.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tensim_core::model::ParameterSpec;
use tensim_core::{Architecture, LayerShape, Model};

use crate::atomic::write_atomic;
use crate::residual_json::{residual_from_json, residual_to_json, ResidualKind};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "tensim-checkpoint/1";

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

/// A loaded checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub model: Model,
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

fn fail<T>(path: &Path, reason: impl Into<String>) -> Result<T, CheckpointError> {
    Err(CheckpointError {
        path: path.to_path_buf(),
        reason: reason.into(),
    })
}

/// JSON form of a layer shape.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum LayerJson {
    Linear {
        input: usize,
        output: usize,
        bias: bool,
    },
    Bilinear {
        input: usize,
        hidden: usize,
        output: usize,
        left_bias: bool,
        right_bias: bool,
        down_bias: bool,
        residual_scale: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        residual_kind: Option<ResidualKind>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchitectureJson {
    layers: Vec<LayerJson>,
}

/// The architecture as the JSON stored in the `architecture` metadata key.
pub fn architecture_to_json(arch: &Architecture) -> String {
    let layers = arch
        .layers
        .iter()
        .map(|l| match *l {
            LayerShape::Linear {
                input,
                output,
                bias,
            } => LayerJson::Linear {
                input,
                output,
                bias,
            },
            LayerShape::Bilinear {
                input,
                hidden,
                output,
                left_bias,
                right_bias,
                down_bias,
                residual,
            } => {
                let (residual_scale, residual_kind) = residual_to_json(residual);
                LayerJson::Bilinear {
                    input,
                    hidden,
                    output,
                    left_bias,
                    right_bias,
                    down_bias,
                    residual_scale,
                    residual_kind,
                }
            }
        })
        .collect();
    serde_json::to_string(&ArchitectureJson { layers }).expect("plain data serialises")
}

/// Parses the `architecture` metadata JSON.
pub fn architecture_from_json(text: &str) -> Result<Architecture, String> {
    let parsed: ArchitectureJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let layers = parsed
        .layers
        .into_iter()
        .map(|l| match l {
            LayerJson::Linear {
                input,
                output,
                bias,
            } => LayerShape::Linear {
                input,
                output,
                bias,
            },
            LayerJson::Bilinear {
                input,
                hidden,
                output,
                left_bias,
                right_bias,
                down_bias,
                residual_scale,
                residual_kind,
            } => LayerShape::Bilinear {
                input,
                hidden,
                output,
                left_bias,
                right_bias,
                down_bias,
                residual: residual_from_json(residual_scale, residual_kind),
            },
        })
        .collect();
    let arch = Architecture { layers };
    arch.validate().map_err(|e| e.to_string())?;
    Ok(arch)
}

/// The metadata of a checkpoint file, read before any tensor.
pub(crate) struct Header {
    /// The raw metadata (every value a string).
    pub info: HashMap<String, String>,
    pub dtype: StoredDtype,
    pub meta: CheckpointMeta,
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
    match info.get("format") {
        Some(f) if f == FORMAT => {}
        Some(f) => return fail(path, format!("metadata `format` is `{f}`, expected `{FORMAT}`")),
        None => {
            return fail(
                path,
                format!(
                    "no `format: {FORMAT}` in the safetensors metadata: not a tensim checkpoint (it has {} tensors and no declared architecture)",
                    tensors.len()
                ),
            )
        }
    }
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
    Ok((tensors, Header { info, dtype, meta }))
}

/// Every tensor the specs declare, checked for presence, dtype, shape and
/// finiteness (and no tensor beyond them), decoded to f64 in spec order.
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
        let decoded = decode(view.dtype(), view.data());
        if let Some((index, value)) = decoded.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return fail(
                path,
                format!(
                    "tensor `{}`: non-finite value {value} at flat index {index}",
                    spec.name
                ),
            );
        }
        values.push(decoded);
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
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    })?;
    write_atomic(path, |w| w.write_all(&bytes)).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: format!("cannot write: {e}"),
    })
}

/// Saves a model as a self-describing safetensors file, atomically.
pub fn save_checkpoint(
    path: &Path,
    model: &Model,
    meta: &CheckpointMeta,
    dtype: StoredDtype,
) -> Result<(), CheckpointError> {
    let arch = model.architecture();
    let mut info = HashMap::new();
    info.insert("architecture".to_string(), architecture_to_json(arch));
    write_file(
        path,
        info,
        &arch.parameter_specs(),
        &model.parameters(),
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

/// Loads a sequential model from its parsed file.
pub(crate) fn sequential_from(
    path: &Path,
    tensors: &SafeTensors<'_>,
    header: Header,
) -> Result<Checkpoint, CheckpointError> {
    let arch = match architecture_from_json(header.architecture(path)?) {
        Ok(a) => a,
        Err(e) => return fail(path, format!("metadata `architecture` is invalid: {e}")),
    };
    let values = read_parameters(path, tensors, &arch.parameter_specs(), header.dtype)?;
    let model = Model::from_parameters(&arch, values).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Checkpoint {
        model,
        meta: header.meta,
        dtype: header.dtype,
        source: format!("tensim safetensors ({})", header.dtype.name()),
    })
}

/// Loads a self-describing checkpoint of a sequential model, checking every
/// tensor. A transformer checkpoint is refused with a pointer to
/// [`crate::load_any_checkpoint`].
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = read_bytes(path)?;
    let (tensors, header) = parse(path, &bytes)?;
    match header.kind() {
        None | Some(KIND_SEQUENTIAL) => sequential_from(path, &tensors, header),
        Some(KIND_TRANSFORMER) => fail(
            path,
            "a transformer checkpoint (metadata `kind: transformer`), not a sequential model; load it with `load_transformer_checkpoint` or `load_any_checkpoint`",
        ),
        Some(other) => fail(path, unknown_kind(other)),
    }
}

/// The message for a `kind` tensim does not know.
pub(crate) fn unknown_kind(kind: &str) -> String {
    format!(
        "metadata `kind` is `{kind}`, expected `{KIND_TRANSFORMER}` or none (a sequential model)"
    )
}
