//! Transformer architecture specs: the `[transformer]` table of an
//! [`ArchSpec`](crate::ArchSpec), saying which tensors of a foreign checkpoint
//! make up a transformer of bilinear components
//! ([`tensim_core::transformer`]). The paper's published language models,
//! written out:
//!
//! ```toml
//! key = "model_state_dict"           # the nested state dict (top level: as for [[layers]])
//! [transformer]
//! heads = 8                          # head_dim = attention width / heads
//! context = 512                      # default 512; analyses choose positions ≤ context
//! mask = "causal"                    # or "full"; default causal
//! rotary_base = 10000.0              # default 10000
//! embed = "embed.weight"
//! embed_rows = "tokens"              # [vocab, d_model] (nn.Embedding; default) or "features" ([d_model, vocab])
//! unembed = "unembed.weight"         # [outputs, d_model]
//! final_norm = { energy = "final_norm.running_mean_energy", eps = 1e-6 }
//! [transformer.attention]
//! q1 = "layers.{i}.q1.weight"        # {i}: the block index
//! k1 = "layers.{i}.k1.weight"
//! q2 = "layers.{i}.q2.weight"
//! k2 = "layers.{i}.k2.weight"
//! v = "layers.{i}.v.weight"
//! out = "layers.{i}.o.weight"
//! residual = "add"                   # x + scale·f(x); "lerp": (1 − scale)·x + scale·f(x); "none": f(x)
//! scale = 0.35
//! ```
//!
//! Top level: `heads` (required), `context`, `mask`, `rotary_base`, `embed`,
//! `embed_rows`, `unembed`, optional `final_norm`, `[transformer.attention]`
//! and/or `[transformer.mlp]`, `ignore` (names or `*` patterns of tensors
//! that are not part of the network), and checks against the file: `blocks`,
//! `vocab`, `d_model`, `head_dim`. Without `blocks`, the blocks are
//! `0, 1, …` while any of their tensors is present; a block holds the
//! components whose tensors it has.
//!
//! Attention: `q1, k1, q2, k2, v, out` name `[width, d_model]` weights
//! (`out`: `[d_model, width]`); or `fused = [{ weight = "…", rows = ["q1",
//! "k1", "q2", "k2", "v"] }]` splits a weight into equal row blocks in that
//! order. MLP: `left`, `right` (or `fused`, `[left; right]`) and `down`.
//! Every weight's bias is the tensor of the same name ending in `bias`
//! instead of `weight`, used when the file has it (or name it: `q1_bias`, …,
//! `out_bias`, `left_bias`, `right_bias`, `down_bias`, `fused_bias`, a fused
//! entry's `bias`; then it is required); q/k biases are all four or none.
//! `bias_qk`, `bias_v`, `bias_out` (true/false) check that choice.
//!
//! `final_norm` folds the input-independent scale `1/sqrt(energy + eps)` of
//! a normalisation with a running statistic (one stored number) into the
//! unembedding, exactly (`count`, optional, names its counter of tracked
//! batches; a count of 0 is noted, as PyTorch would then still normalise
//! by each batch). A norm that depends on the input (LayerNorm,
//! RMSNorm) is not a polynomial and cannot be mapped. Every float tensor of
//! the file (under `prefix`) must be used or ignored, so a spec that misses
//! part of the network is an error, not a different model.

mod build;

use serde::Deserialize;
use tensim_core::transformer::Mask;
use tensim_core::Residual;

/// A transformer's layout in a foreign file (the `[transformer]` table).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransformerSpec {
    /// Attention heads per block.
    pub heads: usize,
    /// The longest sequence the model takes.
    #[serde(default = "default_context")]
    pub context: usize,
    #[serde(default)]
    pub mask: MaskName,
    #[serde(default = "default_rotary_base")]
    pub rotary_base: f64,
    /// The token embedding's tensor.
    pub embed: String,
    #[serde(default)]
    pub embed_rows: EmbedRows,
    /// The unembedding's tensor, `[outputs, d_model]`.
    pub unembed: String,
    #[serde(default)]
    pub final_norm: Option<FinalNormSpec>,
    #[serde(default)]
    pub attention: Option<AttentionSpec>,
    #[serde(default)]
    pub mlp: Option<MlpSpec>,
    /// Tensors that are not part of the network (`*` matches any text).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Expected number of blocks (inferred from the tensors when absent).
    #[serde(default)]
    pub blocks: Option<usize>,
    /// Expected vocabulary size.
    #[serde(default)]
    pub vocab: Option<usize>,
    /// Expected width of the residual stream.
    #[serde(default)]
    pub d_model: Option<usize>,
    /// Expected head width.
    #[serde(default)]
    pub head_dim: Option<usize>,
}

/// The attention mask, as a spec names it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MaskName {
    #[default]
    Causal,
    Full,
}

impl MaskName {
    pub fn mask(self) -> Mask {
        match self {
            MaskName::Causal => Mask::Causal,
            MaskName::Full => Mask::Full,
        }
    }
}

/// How the embedding is stored.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmbedRows {
    /// `[vocab, d_model]`: each row is a token's vector (`nn.Embedding`).
    #[default]
    Tokens,
    /// `[d_model, vocab]`: tensim's layout (`nn.Linear(vocab, d_model)`).
    Features,
}

/// An input-independent final normalisation, `x / sqrt(energy + eps)`,
/// folded into the unembedding.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FinalNormSpec {
    /// The one-number tensor holding the running mean energy.
    pub energy: String,
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// The norm's count of tracked batches, when the file has it: at 0,
    /// PyTorch's inference would still use each batch's statistics, which
    /// the load notes.
    #[serde(default)]
    pub count: Option<String>,
}

/// How a component's output joins the residual stream.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResidualKind {
    /// `x + scale·f(x)`.
    #[default]
    Add,
    /// `(1 − scale)·x + scale·f(x)`.
    Lerp,
    /// `f(x)`.
    None,
}

impl ResidualKind {
    pub fn residual(self, scale: f64) -> Residual {
        match self {
            ResidualKind::Add => Residual::Add(scale),
            ResidualKind::Lerp => Residual::Lerp(scale),
            ResidualKind::None => Residual::None,
        }
    }
}

/// Several projections stored as one weight, split into equal row blocks.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FusedSpec {
    pub weight: String,
    /// The projections in row order (`q1`, `k1`, `q2`, `k2`, `v`).
    pub rows: Vec<String>,
    /// The fused bias (required when named).
    #[serde(default)]
    pub bias: Option<String>,
}

/// The bilinear attention of every block.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttentionSpec {
    #[serde(default)]
    pub q1: Option<String>,
    #[serde(default)]
    pub k1: Option<String>,
    #[serde(default)]
    pub q2: Option<String>,
    #[serde(default)]
    pub k2: Option<String>,
    #[serde(default)]
    pub v: Option<String>,
    pub out: String,
    #[serde(default)]
    pub fused: Vec<FusedSpec>,
    #[serde(default)]
    pub q1_bias: Option<String>,
    #[serde(default)]
    pub k1_bias: Option<String>,
    #[serde(default)]
    pub q2_bias: Option<String>,
    #[serde(default)]
    pub k2_bias: Option<String>,
    #[serde(default)]
    pub v_bias: Option<String>,
    #[serde(default)]
    pub out_bias: Option<String>,
    #[serde(default)]
    pub residual: ResidualKind,
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Whether the blocks must (true) or must not (false) have q/k biases.
    #[serde(default)]
    pub bias_qk: Option<bool>,
    #[serde(default)]
    pub bias_v: Option<bool>,
    #[serde(default)]
    pub bias_out: Option<bool>,
}

/// The bilinear MLP of every block: `D((L x + b_L) ⊙ (R x + b_R)) + b_D`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    #[serde(default)]
    pub left: Option<String>,
    #[serde(default)]
    pub right: Option<String>,
    /// `[L; R]` in one weight, split in halves.
    #[serde(default)]
    pub fused: Option<String>,
    pub down: String,
    #[serde(default)]
    pub left_bias: Option<String>,
    #[serde(default)]
    pub right_bias: Option<String>,
    #[serde(default)]
    pub fused_bias: Option<String>,
    #[serde(default)]
    pub down_bias: Option<String>,
    #[serde(default)]
    pub residual: ResidualKind,
    #[serde(default = "default_scale")]
    pub scale: f64,
}

fn default_context() -> usize {
    512
}

fn default_rotary_base() -> f64 {
    1e4
}

fn default_eps() -> f64 {
    1e-6
}

fn default_scale() -> f64 {
    1.0
}

/// The attention's input projections, in leg order.
pub(crate) const PROJECTIONS: [&str; 5] = ["q1", "k1", "q2", "k2", "v"];

impl AttentionSpec {
    /// The weight named for projection `name` on its own, and its bias name.
    fn named(&self, name: &str) -> (Option<&String>, Option<&String>) {
        match name {
            "q1" => (self.q1.as_ref(), self.q1_bias.as_ref()),
            "k1" => (self.k1.as_ref(), self.k1_bias.as_ref()),
            "q2" => (self.q2.as_ref(), self.q2_bias.as_ref()),
            "k2" => (self.k2.as_ref(), self.k2_bias.as_ref()),
            "v" => (self.v.as_ref(), self.v_bias.as_ref()),
            _ => (None, None),
        }
    }

    /// Every tensor name of the component (weights and named biases).
    fn names(&self) -> Vec<&String> {
        let fused = self
            .fused
            .iter()
            .flat_map(|f| std::iter::once(&f.weight).chain(&f.bias));
        [
            &self.q1,
            &self.k1,
            &self.q2,
            &self.k2,
            &self.v,
            &self.q1_bias,
            &self.k1_bias,
            &self.q2_bias,
            &self.k2_bias,
            &self.v_bias,
            &self.out_bias,
        ]
        .into_iter()
        .flatten()
        .chain([&self.out])
        .chain(fused)
        .collect()
    }

    /// Every projection comes from exactly one place; fused rows name
    /// projections; biases go with their weights.
    fn check(&self) -> Result<(), String> {
        for f in &self.fused {
            if f.rows.is_empty() {
                return Err(format!("attention: fused `{}` lists no rows", f.weight));
            }
            if let Some(bad) = f.rows.iter().find(|r| !PROJECTIONS.contains(&r.as_str())) {
                return Err(format!(
                    "attention: fused `{}` has row block `{bad}`; rows are q1, k1, q2, k2 or v",
                    f.weight
                ));
            }
        }
        for p in PROJECTIONS {
            let (weight, bias) = self.named(p);
            let fused = self.fused.iter().flat_map(|f| &f.rows).filter(|r| *r == p);
            match (weight.is_some(), fused.count()) {
                (true, 0) | (false, 1) => {}
                (false, 0) => {
                    return Err(format!(
                        "attention: `{p}` is named nowhere (give `{p} = \"…\"` or a fused row)"
                    ))
                }
                _ => return Err(format!("attention: `{p}` is named more than once")),
            }
            if bias.is_some() && weight.is_none() {
                return Err(format!(
                    "attention: `{p}_bias` goes with `{p}`; a fused weight's bias is its entry's `bias`"
                ));
            }
        }
        Ok(())
    }
}

impl MlpSpec {
    fn check(&self) -> Result<(), String> {
        match (&self.left, &self.right, &self.fused) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            _ => return Err("mlp: give either `left` and `right`, or `fused`".into()),
        }
        let split_bias = self.left_bias.is_some() || self.right_bias.is_some();
        if self.fused_bias.is_some() && (self.fused.is_none() || split_bias) {
            return Err(
                "mlp: `fused_bias` goes with `fused`, not with `left_bias`/`right_bias`".into(),
            );
        }
        if self.fused.is_some() && split_bias {
            return Err("mlp: a fused weight's bias is `fused_bias`".into());
        }
        Ok(())
    }

    /// Every tensor name of the component (weights and named biases).
    fn names(&self) -> Vec<&String> {
        [
            &self.left,
            &self.right,
            &self.fused,
            &self.left_bias,
            &self.right_bias,
            &self.fused_bias,
            &self.down_bias,
        ]
        .into_iter()
        .flatten()
        .chain([&self.down])
        .collect()
    }
}

impl TransformerSpec {
    /// Checks what can be checked without a file: a component exists, every
    /// projection is named once, block tensors carry `{i}` and the others
    /// do not.
    pub fn check(&self) -> Result<(), String> {
        if self.heads == 0 || self.context == 0 {
            return Err("transformer: `heads` and `context` must be positive".into());
        }
        if self.attention.is_none() && self.mlp.is_none() {
            return Err(
                "transformer: give [transformer.attention], [transformer.mlp] or both".into(),
            );
        }
        let mut block_names = Vec::new();
        if let Some(a) = &self.attention {
            a.check()?;
            block_names.extend(a.names());
        }
        if let Some(m) = &self.mlp {
            m.check()?;
            block_names.extend(m.names());
        }
        if let Some(n) = block_names.iter().find(|n| !n.contains("{i}")) {
            return Err(format!(
                "transformer: block tensor `{n}` has no `{{i}}` (the block index), so every block would share it"
            ));
        }
        let global = [Some(&self.embed), Some(&self.unembed)]
            .into_iter()
            .chain([self.final_norm.as_ref().map(|f| &f.energy)])
            .flatten();
        for n in global {
            if n.contains("{i}") {
                return Err(format!(
                    "transformer: `{n}` is not a block tensor; `{{i}}` belongs in block names only"
                ));
            }
        }
        Ok(())
    }
}
