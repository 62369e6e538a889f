//! The `architecture` metadata of a checkpoint: the JSON that declares a
//! network's shape, for each kind.
//!
//! Sequential (no `kind` key):
//! `{"layers":[{"kind":"bilinear","input":784,"hidden":64,"output":10,
//! "left_bias":false,"right_bias":false,"down_bias":false,"residual_scale":1.0}]}`
//!
//! Transformer (`kind: transformer`):
//!
//! ```json
//! {"vocab":59,"d_model":32,"heads":2,"head_dim":16,"context":16,
//!  "mask":"causal","rotary_base":10000.0,
//!  "blocks":[{"attention_bias":true,"attention_residual":0.35,
//!             "mlp":{"hidden":64,"bias":true,"residual_scale":0.35}}]}
//! ```
//!
//! (`"mlp": null` for a block without MLP.) Residuals are stored as a lerp
//! scale (`1` = no residual). An additive residual `x + s·f(x)` stores `s`
//! there and adds `"residual_kind": "add"` (`"attention_residual_kind"` for
//! an attention), a field older readers refuse (they deny unknown fields)
//! instead of misreading the model.

use serde::{Deserialize, Serialize};
use tensim_core::network::{NetworkKind, NetworkShape};
use tensim_core::transformer::{BlockShape, Mask, MlpShape, TransformerShape};
use tensim_core::{Architecture, LayerShape, Residual};

/// The `architecture` JSON of a shape of either kind.
pub fn shape_to_json(shape: &NetworkShape) -> String {
    match shape {
        NetworkShape::Sequential(a) => architecture_to_json(a),
        NetworkShape::Transformer(s) => transformer_shape_to_json(s),
    }
}

/// Parses and validates the `architecture` JSON of a network of `kind`.
pub fn shape_from_json(kind: NetworkKind, text: &str) -> Result<NetworkShape, String> {
    Ok(match kind {
        NetworkKind::Sequential => NetworkShape::Sequential(architecture_from_json(text)?),
        NetworkKind::Transformer => NetworkShape::Transformer(transformer_shape_from_json(text)?),
    })
}

/// The kind of a residual that the lerp scale alone does not describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ResidualKind {
    /// `x + s·f(x)`.
    Add,
}

/// `(residual_scale, residual_kind)` as written to a file.
fn residual_to_json(r: Residual) -> (f64, Option<ResidualKind>) {
    match r {
        Residual::Add(s) => (s, Some(ResidualKind::Add)),
        _ => (r.lerp_scale().expect("not additive"), None),
    }
}

/// The residual a file's `(residual_scale, residual_kind)` describes.
fn residual_from_json(scale: f64, kind: Option<ResidualKind>) -> Residual {
    match kind {
        Some(ResidualKind::Add) => Residual::Add(scale),
        None => Residual::from_lerp_scale(scale),
    }
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
