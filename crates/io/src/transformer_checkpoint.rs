//! Transformer checkpoints, and loading any tensim checkpoint.
//!
//! A transformer file is a tensim checkpoint ([`crate::checkpoint`]) with
//! metadata `kind: transformer` and an `architecture` JSON such as
//!
//! ```json
//! {"vocab":59,"d_model":32,"heads":2,"head_dim":16,"context":16,
//!  "mask":"causal","rotary_base":10000.0,
//!  "blocks":[{"attention_bias":true,"attention_residual":0.35,
//!             "mlp":{"hidden":64,"bias":true,"residual_scale":0.35}}]}
//! ```
//!
//! (`"mlp": null` for a block without MLP). Tensors are named as
//! [`TransformerShape::parameter_specs`] says (`embed.weight`,
//! `blocks.0.attn.q1.weight`, …, `unembed.weight`), PyTorch layout
//! `[out, in]`. Loading checks every tensor's presence, dtype, shape and
//! finiteness against the declared architecture, naming the file and the
//! tensor. Files without `kind` are the sequential models and still load.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tensim_core::transformer::{BlockShape, Mask, MlpShape, Transformer, TransformerShape};
use tensim_core::Model;

use crate::checkpoint::{
    parse, read_bytes, read_parameters, sequential_from, unknown_kind, write_file, Checkpoint,
    CheckpointError, CheckpointMeta, StoredDtype, KIND_KEY, KIND_SEQUENTIAL, KIND_TRANSFORMER,
};
use crate::residual_json::{residual_from_json, residual_to_json, ResidualKind};

/// A loaded transformer checkpoint.
#[derive(Clone, Debug)]
pub struct TransformerCheckpoint {
    pub model: Transformer,
    pub meta: CheckpointMeta,
    pub dtype: StoredDtype,
    /// "tensim safetensors (f32)", …
    pub source: String,
}

/// The model of any tensim checkpoint.
#[derive(Clone, Debug)]
pub enum AnyModel {
    Sequential(Model),
    Transformer(Transformer),
}

impl AnyModel {
    /// `"sequential"` or `"transformer"`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyModel::Sequential(_) => KIND_SEQUENTIAL,
            AnyModel::Transformer(_) => KIND_TRANSFORMER,
        }
    }
}

/// Any tensim checkpoint, sequential or transformer.
#[derive(Clone, Debug)]
pub struct AnyCheckpoint {
    pub model: AnyModel,
    pub meta: CheckpointMeta,
    pub dtype: StoredDtype,
    pub source: String,
}

impl From<Checkpoint> for AnyCheckpoint {
    fn from(c: Checkpoint) -> Self {
        AnyCheckpoint {
            model: AnyModel::Sequential(c.model),
            meta: c.meta,
            dtype: c.dtype,
            source: c.source,
        }
    }
}

impl From<TransformerCheckpoint> for AnyCheckpoint {
    fn from(c: TransformerCheckpoint) -> Self {
        AnyCheckpoint {
            model: AnyModel::Transformer(c.model),
            meta: c.meta,
            dtype: c.dtype,
            source: c.source,
        }
    }
}

/// JSON form of an MLP.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpJson {
    hidden: usize,
    bias: bool,
    residual_scale: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    residual_kind: Option<ResidualKind>,
}

/// JSON form of a block.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockJson {
    attention_bias: bool,
    attention_residual: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attention_residual_kind: Option<ResidualKind>,
    mlp: Option<MlpJson>,
}

/// JSON form of a transformer shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformerJson {
    vocab: usize,
    d_model: usize,
    heads: usize,
    head_dim: usize,
    context: usize,
    mask: String,
    rotary_base: f64,
    blocks: Vec<BlockJson>,
}

/// The shape as the JSON stored in the `architecture` metadata key.
pub fn transformer_shape_to_json(shape: &TransformerShape) -> String {
    let json = TransformerJson {
        vocab: shape.vocab,
        d_model: shape.d_model,
        heads: shape.heads,
        head_dim: shape.head_dim,
        context: shape.context,
        mask: shape.mask.name().to_string(),
        rotary_base: shape.rotary_base,
        blocks: shape
            .blocks
            .iter()
            .map(|b| {
                let (attention_residual, attention_residual_kind) =
                    residual_to_json(b.attention_residual);
                BlockJson {
                    attention_bias: b.attention_bias,
                    attention_residual,
                    attention_residual_kind,
                    mlp: b.mlp.map(|m| {
                        let (residual_scale, residual_kind) = residual_to_json(m.residual);
                        MlpJson {
                            hidden: m.hidden,
                            bias: m.bias,
                            residual_scale,
                            residual_kind,
                        }
                    }),
                }
            })
            .collect(),
    };
    serde_json::to_string(&json).expect("plain data serialises")
}

/// Parses and validates a transformer `architecture` JSON.
pub fn transformer_shape_from_json(text: &str) -> Result<TransformerShape, String> {
    let j: TransformerJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mask = Mask::parse(&j.mask).map_err(|e| e.to_string())?;
    if !(j.rotary_base.is_finite() && j.rotary_base > 0.0) {
        return Err(format!(
            "rotary_base must be a positive number, found {}",
            j.rotary_base
        ));
    }
    let shape = TransformerShape {
        vocab: j.vocab,
        d_model: j.d_model,
        heads: j.heads,
        head_dim: j.head_dim,
        context: j.context,
        mask,
        rotary_base: j.rotary_base,
        blocks: j
            .blocks
            .into_iter()
            .map(|b| BlockShape {
                attention_bias: b.attention_bias,
                attention_residual: residual_from_json(
                    b.attention_residual,
                    b.attention_residual_kind,
                ),
                mlp: b.mlp.map(|m| MlpShape {
                    hidden: m.hidden,
                    bias: m.bias,
                    residual: residual_from_json(m.residual_scale, m.residual_kind),
                }),
            })
            .collect(),
    };
    shape.validate().map_err(|e| e.to_string())?;
    for (i, b) in shape.blocks.iter().enumerate() {
        if b.mlp.is_some_and(|m| m.hidden == 0) {
            return Err(format!("block {i}: an MLP needs at least one hidden unit"));
        }
    }
    Ok(shape)
}

/// Saves a transformer as a self-describing safetensors file, atomically.
pub fn save_transformer_checkpoint(
    path: &Path,
    model: &Transformer,
    meta: &CheckpointMeta,
    dtype: StoredDtype,
) -> Result<(), CheckpointError> {
    let shape = model.shape();
    let mut info = HashMap::new();
    info.insert(KIND_KEY.to_string(), KIND_TRANSFORMER.to_string());
    info.insert(
        "architecture".to_string(),
        transformer_shape_to_json(&shape),
    );
    write_file(
        path,
        info,
        &shape.parameter_specs(),
        &model.parameters(),
        meta,
        dtype,
    )
}

fn transformer_from(
    path: &Path,
    tensors: &safetensors::SafeTensors<'_>,
    header: crate::checkpoint::Header,
) -> Result<TransformerCheckpoint, CheckpointError> {
    let shape =
        transformer_shape_from_json(header.architecture(path)?).map_err(|e| CheckpointError {
            path: path.to_path_buf(),
            reason: format!("metadata `architecture` is invalid: {e}"),
        })?;
    let values = read_parameters(path, tensors, &shape.parameter_specs(), header.dtype)?;
    let model = Transformer::from_parameters(&shape, values).map_err(|e| CheckpointError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(TransformerCheckpoint {
        model,
        meta: header.meta,
        dtype: header.dtype,
        source: format!("tensim safetensors ({}, transformer)", header.dtype.name()),
    })
}

/// Loads a transformer checkpoint, checking every tensor.
pub fn load_transformer_checkpoint(path: &Path) -> Result<TransformerCheckpoint, CheckpointError> {
    let bytes = read_bytes(path)?;
    let (tensors, header) = parse(path, &bytes)?;
    match header.kind() {
        Some(KIND_TRANSFORMER) => transformer_from(path, &tensors, header),
        None | Some(KIND_SEQUENTIAL) => Err(CheckpointError {
            path: path.to_path_buf(),
            reason: "a sequential model (no metadata `kind: transformer`), not a transformer; load it with `load_checkpoint` or `load_any_checkpoint`".into(),
        }),
        Some(other) => Err(CheckpointError {
            path: path.to_path_buf(),
            reason: unknown_kind(other),
        }),
    }
}

/// Loads any tensim checkpoint: a transformer when the metadata says
/// `kind: transformer`, else a sequential model.
pub fn load_any_checkpoint(path: &Path) -> Result<AnyCheckpoint, CheckpointError> {
    let bytes = read_bytes(path)?;
    let (tensors, header) = parse(path, &bytes)?;
    match header.kind() {
        Some(KIND_TRANSFORMER) => transformer_from(path, &tensors, header).map(Into::into),
        None | Some(KIND_SEQUENTIAL) => sequential_from(path, &tensors, header).map(Into::into),
        Some(other) => Err(CheckpointError {
            path: path.to_path_buf(),
            reason: unknown_kind(other),
        }),
    }
}
