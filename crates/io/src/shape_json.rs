//! The `architecture` metadata of a checkpoint: the JSON that declares a
//! network's shape, for each kind.
//!
//! Sequential (no `kind` key):
//! `{"layers":[{"kind":"bilinear","input":784,"hidden":64,"output":10,
//! "left_bias":false,"right_bias":false,"down_bias":false,"residual_scale":1.0}]}`
//!
//! A sequential model's residuals are stored as a lerp scale (`1` = no
//! residual); an additive residual `x + s·f(x)` stores `s` there and adds
//! `"residual_kind": "add"`, a field older readers refuse (they deny unknown
//! fields) instead of misreading the model.
//!
//! Transformer (`kind: transformer`), checkpoint format 2:
//!
//! ```json
//! {"vocab":59,"outputs":59,"d_model":32,"heads":2,"head_dim":16,"context":16,
//!  "mask":"causal","rotary_base":10000.0,
//!  "blocks":[{"attention":{"bias":{"qk":true,"v":false,"out":false},
//!                          "residual":{"kind":"add","scale":0.35}},
//!             "mlp":{"hidden":64,"bias":{"left":true,"right":true,"down":false},
//!                    "residual":{"kind":"lerp","scale":0.35}}}]}
//! ```
//!
//! (`null` for an absent attention or MLP; residual kinds `none`, `lerp`,
//! `add`.) Format 1 stored biases all-or-none (`"attention_bias": true`,
//! `"mlp": {"bias": true, …}`), residuals as a lerp scale with an optional
//! `residual_kind`, and no `outputs` (the vocabulary); it is still read.

use serde::{Deserialize, Serialize};
use tensim_core::network::{NetworkKind, NetworkShape};
use tensim_core::transformer::{
    AttentionBias, AttentionShape, BlockShape, Mask, MlpShape, TransformerShape,
};
use tensim_core::{Architecture, LayerShape, Residual};

/// The `architecture` JSON of a shape of either kind.
pub fn shape_to_json(shape: &NetworkShape) -> String {
    match shape {
        NetworkShape::Sequential(a) => architecture_to_json(a),
        NetworkShape::Transformer(s) => transformer_shape_to_json(s),
    }
}

/// Parses and validates the `architecture` JSON of a network of `kind`,
/// written in checkpoint format `version`.
pub fn shape_from_json(
    kind: NetworkKind,
    text: &str,
    version: u32,
) -> Result<NetworkShape, String> {
    Ok(match kind {
        NetworkKind::Sequential => NetworkShape::Sequential(architecture_from_json(text)?),
        NetworkKind::Transformer => {
            NetworkShape::Transformer(transformer_shape_from_json(text, version)?)
        }
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

/// A residual as format 2 writes it: `{"kind":"none"}`,
/// `{"kind":"lerp","scale":s}` or `{"kind":"add","scale":s}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ResidualJson {
    None,
    Lerp { scale: f64 },
    Add { scale: f64 },
}

impl From<Residual> for ResidualJson {
    fn from(r: Residual) -> Self {
        match r {
            Residual::None => ResidualJson::None,
            Residual::Lerp(scale) => ResidualJson::Lerp { scale },
            Residual::Add(scale) => ResidualJson::Add { scale },
        }
    }
}

impl From<ResidualJson> for Residual {
    fn from(r: ResidualJson) -> Self {
        match r {
            ResidualJson::None => Residual::None,
            ResidualJson::Lerp { scale } => Residual::Lerp(scale),
            ResidualJson::Add { scale } => Residual::Add(scale),
        }
    }
}

/// Format 2: which attention projection groups carry biases.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttentionBiasJson {
    qk: bool,
    v: bool,
    out: bool,
}

/// Format 2: an attention.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttentionJson {
    bias: AttentionBiasJson,
    residual: ResidualJson,
}

/// Format 2: which of an MLP's maps carry biases.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpBiasJson {
    left: bool,
    right: bool,
    down: bool,
}

/// Format 2: an MLP.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpJson {
    hidden: usize,
    bias: MlpBiasJson,
    residual: ResidualJson,
}

/// Format 2: a block (either component may be `null`, not both).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockJson {
    attention: Option<AttentionJson>,
    mlp: Option<MlpJson>,
}

/// Format 2: a transformer shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformerJson {
    vocab: usize,
    outputs: usize,
    d_model: usize,
    heads: usize,
    head_dim: usize,
    context: usize,
    mask: String,
    rotary_base: f64,
    blocks: Vec<BlockJson>,
}

impl From<&BlockShape> for BlockJson {
    fn from(b: &BlockShape) -> Self {
        BlockJson {
            attention: b.attention.map(|a| AttentionJson {
                bias: AttentionBiasJson {
                    qk: a.bias.qk,
                    v: a.bias.v,
                    out: a.bias.out,
                },
                residual: a.residual.into(),
            }),
            mlp: b.mlp.map(|m| MlpJson {
                hidden: m.hidden,
                bias: MlpBiasJson {
                    left: m.bias[0],
                    right: m.bias[1],
                    down: m.bias[2],
                },
                residual: m.residual.into(),
            }),
        }
    }
}

impl From<BlockJson> for BlockShape {
    fn from(b: BlockJson) -> Self {
        BlockShape {
            attention: b.attention.map(|a| AttentionShape {
                bias: AttentionBias {
                    qk: a.bias.qk,
                    v: a.bias.v,
                    out: a.bias.out,
                },
                residual: a.residual.into(),
            }),
            mlp: b.mlp.map(|m| MlpShape {
                hidden: m.hidden,
                bias: [m.bias.left, m.bias.right, m.bias.down],
                residual: m.residual.into(),
            }),
        }
    }
}

/// The shape as the JSON stored in the `architecture` metadata key (format 2).
pub fn transformer_shape_to_json(shape: &TransformerShape) -> String {
    let json = TransformerJson {
        vocab: shape.vocab,
        outputs: shape.outputs,
        d_model: shape.d_model,
        heads: shape.heads,
        head_dim: shape.head_dim,
        context: shape.context,
        mask: shape.mask.name().to_string(),
        rotary_base: shape.rotary_base,
        blocks: shape.blocks.iter().map(BlockJson::from).collect(),
    };
    serde_json::to_string(&json).expect("plain data serialises")
}

/// Parses and validates a transformer `architecture` JSON of checkpoint
/// format `version` (1 or 2).
pub fn transformer_shape_from_json(text: &str, version: u32) -> Result<TransformerShape, String> {
    let j: TransformerJson = if version == 1 {
        serde_json::from_str::<v1::TransformerJson>(text)
            .map_err(|e| e.to_string())?
            .into()
    } else {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    };
    let mask = Mask::parse(&j.mask).map_err(|e| e.to_string())?;
    let shape = TransformerShape {
        vocab: j.vocab,
        outputs: j.outputs,
        d_model: j.d_model,
        heads: j.heads,
        head_dim: j.head_dim,
        context: j.context,
        mask,
        rotary_base: j.rotary_base,
        blocks: j.blocks.into_iter().map(BlockShape::from).collect(),
    };
    shape.validate().map_err(|e| e.to_string())?;
    Ok(shape)
}

/// The transformer JSON of format 1 (read only): biases all-or-none per
/// attention and per MLP, residuals as a lerp scale with an optional
/// `residual_kind`, logits as wide as the vocabulary.
mod v1 {
    use super::{residual_from_json, ResidualKind};
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MlpJson {
        hidden: usize,
        bias: bool,
        residual_scale: f64,
        #[serde(default)]
        residual_kind: Option<ResidualKind>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BlockJson {
        attention_bias: bool,
        attention_residual: f64,
        #[serde(default)]
        attention_residual_kind: Option<ResidualKind>,
        mlp: Option<MlpJson>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct TransformerJson {
        vocab: usize,
        d_model: usize,
        heads: usize,
        head_dim: usize,
        context: usize,
        mask: String,
        rotary_base: f64,
        blocks: Vec<BlockJson>,
    }

    impl From<TransformerJson> for super::TransformerJson {
        fn from(j: TransformerJson) -> Self {
            let bias = |on| super::AttentionBiasJson {
                qk: on,
                v: on,
                out: on,
            };
            let blocks = j
                .blocks
                .into_iter()
                .map(|b| super::BlockJson {
                    attention: Some(super::AttentionJson {
                        bias: bias(b.attention_bias),
                        residual: residual_from_json(
                            b.attention_residual,
                            b.attention_residual_kind,
                        )
                        .into(),
                    }),
                    mlp: b.mlp.map(|m| super::MlpJson {
                        hidden: m.hidden,
                        bias: super::MlpBiasJson {
                            left: m.bias,
                            right: m.bias,
                            down: m.bias,
                        },
                        residual: residual_from_json(m.residual_scale, m.residual_kind).into(),
                    }),
                })
                .collect();
            super::TransformerJson {
                vocab: j.vocab,
                outputs: j.vocab,
                d_model: j.d_model,
                heads: j.heads,
                head_dim: j.head_dim,
                context: j.context,
                mask: j.mask,
                rotary_base: j.rotary_base,
                blocks,
            }
        }
    }
}
