//! The paper's published language models, loaded with no spec: a run
//! directory holds `config.json` and `checkpoints/step_NNNNN.pt`, each
//! checkpoint a `torch.save`d dict whose `model_state_dict` holds
//!
//! ```text
//! embed.weight                     [vocab, d_model]   rows are token vectors
//! layers.{i}.{q1,k1,q2,k2}.weight  [d_model, d_model] (and .bias [d_model] when use_bias_qk)
//! layers.{i}.{v,o}.weight          [d_model, d_model] no biases
//! unembed.weight                   [vocab, d_model]
//! final_norm.running_mean_energy   [1]
//! ```
//!
//! Each block is attention only, `x + attn_scale · O z`, with per-head
//! rotary (rotate-half, base `rope_base`) on q1, k1, q2, k2, a causal mask
//! and the pattern `(q1·k1)(q2·k2)/d_head²`: tensim's own definitions
//! ([`tensim_core::transformer`]). At inference the final norm scales the
//! residual stream by the input-independent `1/sqrt(running_mean_energy +
//! 1e-6)` before the unembedding; it is folded into `unembed.weight`.
//!
//! [`spec_from_config`] writes the `model` block of `config.json`
//! (`vocab_size`, `d_model`, `n_head`, `n_layers`, `n_ctx` (default 512),
//! `attn_type` "bilinear", `attn_scale` (default 0.35), `use_bias_qk`
//! (default true), `rope_base` (default 10000), and the norm settings) as an
//! ordinary transformer [`ArchSpec`], so these files load through the same
//! code as any spec, and every width the config states is checked against
//! the tensors. What is not a polynomial — softmax attention, an RMSNorm on
//! q/k, a final norm that depends on the input — is refused.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::arch_spec::ArchSpec;
use crate::checkpoint::CheckpointError;
use crate::transformer_spec::{
    AttentionSpec, EmbedRows, FinalNormSpec, MaskName, ResidualKind, TransformerSpec,
};

/// The config file of a run directory.
pub const CONFIG_FILE: &str = "config.json";

/// `config.json` beside `checkpoint` or one directory up (a run's
/// `checkpoints/` folder), if either exists.
pub fn find_config(checkpoint: &Path) -> Option<PathBuf> {
    let dir = checkpoint.parent()?;
    std::iter::once(dir)
        .chain(dir.parent())
        .map(|d| d.join(CONFIG_FILE))
        .find(|c| c.is_file())
}

/// The `model` block of a run's config: what shapes the network.
#[derive(Deserialize)]
struct ModelConfig {
    vocab_size: usize,
    d_model: usize,
    n_head: usize,
    n_layers: usize,
    #[serde(default)]
    n_ctx: Option<usize>,
    #[serde(default)]
    attn_type: Option<String>,
    #[serde(default = "default_attn_scale")]
    attn_scale: f64,
    #[serde(default = "default_true")]
    use_bias_qk: bool,
    #[serde(default)]
    rope_base: Option<f64>,
    #[serde(default)]
    use_rmsnorm_qk: bool,
    #[serde(default)]
    norm_type: Option<String>,
    #[serde(default)]
    norm_places: Option<Vec<String>>,
    #[serde(default)]
    norm_place: Option<String>,
    #[serde(default)]
    norm_kwargs: Map<String, Value>,
}

fn default_attn_scale() -> f64 {
    0.35
}

fn default_true() -> bool {
    true
}

/// The context when the config states none.
const DEFAULT_CONTEXT: usize = 512;

/// The final norm's epsilon when `norm_kwargs` sets none.
const DEFAULT_NORM_EPS: f64 = 1e-6;

/// Norms whose scale depends on the input at inference.
const INPUT_DEPENDENT_NORMS: [&str; 5] = [
    "rmsnorm",
    "layernorm",
    "maxrmsnorm",
    "causal_maxrmsnorm",
    "tok0",
];

/// The transformer spec a run's `config.json` describes.
pub fn spec_from_config(config: &Path) -> Result<ArchSpec, CheckpointError> {
    let fail = |reason: String| CheckpointError {
        path: config.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(config).map_err(|e| fail(format!("cannot read: {e}")))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let block = doc.get("model").unwrap_or(&doc).clone();
    let m: ModelConfig = serde_json::from_value(block).map_err(|e| {
        fail(format!(
            "not a published bilinear language model's config ({e}); expected a `model` block with vocab_size, d_model, n_head and n_layers, or pass --arch SPEC.toml"
        ))
    })?;
    check_attention(&m).map_err(fail)?;
    let final_norm = final_norm(&m).map_err(fail)?;
    if m.n_head == 0 || m.d_model % m.n_head != 0 {
        return Err(fail(format!(
            "model.d_model {} is not divisible by model.n_head {}",
            m.d_model, m.n_head
        )));
    }
    let transformer = TransformerSpec {
        heads: m.n_head,
        context: m.n_ctx.unwrap_or(DEFAULT_CONTEXT),
        mask: MaskName::Causal,
        rotary_base: m.rope_base.unwrap_or(1e4),
        embed: "embed.weight".into(),
        embed_rows: EmbedRows::Tokens,
        unembed: "unembed.weight".into(),
        final_norm,
        attention: Some(attention(&m)),
        mlp: None,
        ignore: Vec::new(),
        blocks: Some(m.n_layers),
        vocab: Some(m.vocab_size),
        d_model: Some(m.d_model),
        head_dim: Some(m.d_model / m.n_head),
    };
    let spec = ArchSpec {
        key: Some("model_state_dict".into()),
        prefix: None,
        layers: Vec::new(),
        transformer: Some(transformer),
        origin: Some(config.to_path_buf()),
    };
    spec.transformer
        .as_ref()
        .expect("set above")
        .check()
        .map_err(fail)?;
    Ok(spec)
}

/// Refuses attention that is not bilinear or not polynomial.
fn check_attention(m: &ModelConfig) -> Result<(), String> {
    match m.attn_type.as_deref() {
        None | Some("bilinear") => {}
        Some("quadratic") => {
            return Err("model.attn_type is \"quadratic\", not \"bilinear\": its (q·k)² is bilinear attention with q1 = q2 = q and k1 = k2 = k; map it with an --arch spec naming those tensors twice".into())
        }
        Some(other) => {
            return Err(format!(
                "model.attn_type is {other:?}; only bilinear attention (q1, k1, q2, k2) is a polynomial tensim can compare"
            ))
        }
    }
    if m.use_rmsnorm_qk {
        return Err("model.use_rmsnorm_qk is true: an RMSNorm on q and k depends on the input, so the attention is not a polynomial and tensim cannot map it".into());
    }
    Ok(())
}

/// The final norm to fold: the published `tok0_batch` before the
/// unembedding (also when the config says nothing about norms), or none.
fn final_norm(m: &ModelConfig) -> Result<Option<FinalNormSpec>, String> {
    let places = match (&m.norm_places, &m.norm_place) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) => Some(vec![p.clone()]),
        (None, None) => None,
    };
    let kind = match (&m.norm_type, &places) {
        (None, None) => "tok0_batch",
        (_, Some(p)) if p.is_empty() => return Ok(None),
        (None, Some(_)) => "rmsnorm",
        (Some(kind), _) if kind == "none" => return Ok(None),
        (Some(_), None) => return Ok(None),
        (Some(kind), Some(_)) => kind.as_str(),
    };
    if INPUT_DEPENDENT_NORMS.contains(&kind) {
        return Err(format!(
            "model.norm_type is {kind:?}: this normalisation depends on the input, so the model is not a polynomial and tensim cannot compare it"
        ));
    }
    if kind != "tok0_batch" {
        return Err(format!(
            "model.norm_type is {kind:?}; tensim folds only the input-independent tok0_batch norm (a running energy) into the unembedding"
        ));
    }
    if places
        .as_ref()
        .is_some_and(|p| p.as_slice() != ["pre_unembed"])
    {
        return Err(format!(
            "model.norm_places is {:?}; tensim folds a tok0_batch norm only where it stands alone before the unembedding ([\"pre_unembed\"])",
            places.unwrap_or_default()
        ));
    }
    if m.norm_kwargs.get("use_running_stats") == Some(&Value::Bool(false)) {
        return Err("model.norm_kwargs.use_running_stats is false: the norm then uses each batch's statistics at inference, which depend on the input".into());
    }
    let eps = m.norm_kwargs.get("eps").and_then(Value::as_f64);
    Ok(Some(FinalNormSpec {
        energy: "final_norm.running_mean_energy".into(),
        eps: eps.unwrap_or(DEFAULT_NORM_EPS),
        count: Some("final_norm.num_batches_tracked".into()),
    }))
}

/// Attention-only blocks `x + attn_scale · O z`, biases on q/k as the
/// config says and none on v and o.
fn attention(m: &ModelConfig) -> AttentionSpec {
    let name = |p: &str| Some(format!("layers.{{i}}.{p}.weight"));
    AttentionSpec {
        q1: name("q1"),
        k1: name("k1"),
        q2: name("q2"),
        k2: name("k2"),
        v: name("v"),
        out: "layers.{i}.o.weight".into(),
        fused: Vec::new(),
        q1_bias: None,
        k1_bias: None,
        q2_bias: None,
        k2_bias: None,
        v_bias: None,
        out_bias: None,
        residual: ResidualKind::Add,
        scale: m.attn_scale,
        bias_qk: Some(m.use_bias_qk),
        bias_v: Some(false),
        bias_out: Some(false),
    }
}
