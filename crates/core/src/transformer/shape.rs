//! What a checkpoint declares about a transformer: widths, heads, mask,
//! rotary base and each block's components, their parameter names and
//! shapes, and random initialisation.

use faer::Mat;

use super::{Attention, Block, Mask, Transformer, ATTENTION_PROJECTIONS};
use crate::error::{Error, Result};
use crate::layout::{Convention, ParameterSource, SpecRecorder, UniformInit};
use crate::model::ParameterSpec;
use crate::residual::Residual;

/// Which of an attention's projection groups carry a bias.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttentionBias {
    /// Biases on the four rotary projections `q1, k1, q2, k2` (added before rotary).
    pub qk: bool,
    /// A bias on the value projection `v`.
    pub v: bool,
    /// A bias on the output projection `O`.
    pub out: bool,
}

impl AttentionBias {
    /// Biases on the rotary projections only, as in the published language models.
    pub const QK: AttentionBias = AttentionBias {
        qk: true,
        v: false,
        out: false,
    };

    /// Biases on every projection, or on none.
    pub fn all(on: bool) -> Self {
        AttentionBias {
            qk: on,
            v: on,
            out: on,
        }
    }

    /// Whether projection `q1, k1, q2, k2, v` (leg order, index `0..5`) has a bias.
    pub fn projection(self, index: usize) -> bool {
        if index < 4 {
            self.qk
        } else {
            self.v
        }
    }
}

/// The shape of a block's bilinear attention.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    /// Which projection groups carry biases.
    pub bias: AttentionBias,
    /// How the attention's output joins the stream (MATH.md §1.5).
    pub residual: Residual,
}

/// The shape of a block's bilinear MLP.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MlpShape {
    /// Hidden units of `L`, `R` (rows) and `D` (columns).
    pub hidden: usize,
    /// Biases on left, right and down, in that order.
    pub bias: [bool; 3],
    /// How the MLP's output joins the stream (MATH.md §1.3).
    pub residual: Residual,
}

/// The shape of one block: an attention, then an MLP, either of which may
/// be absent (not both).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockShape {
    /// The bilinear attention, or `None` for an MLP-only block.
    pub attention: Option<AttentionShape>,
    /// The bilinear MLP after the attention, or `None` for an attention-only block.
    pub mlp: Option<MlpShape>,
}

impl BlockShape {
    /// A block of attention only.
    pub fn attention_only(bias: AttentionBias, residual: Residual) -> Self {
        BlockShape {
            attention: Some(AttentionShape { bias, residual }),
            mlp: None,
        }
    }

    /// A block of an MLP only, of `hidden` units, biases on left, right, down as `bias` says.
    pub fn mlp_only(hidden: usize, bias: [bool; 3], residual: Residual) -> Self {
        BlockShape {
            attention: None,
            mlp: Some(MlpShape {
                hidden,
                bias,
                residual,
            }),
        }
    }

    /// This block with an MLP of `hidden` units after its attention.
    pub fn with_mlp(self, hidden: usize, bias: [bool; 3], residual: Residual) -> Self {
        BlockShape {
            mlp: Some(MlpShape {
                hidden,
                bias,
                residual,
            }),
            ..self
        }
    }

    /// One line for tables: `attention (bias q/k; additive residual x + 0.35·f(x))
    /// → MLP 64 (no bias; residual s=0.35)`.
    pub fn describe(&self) -> String {
        let biases = |names: &[(&str, bool)]| {
            let on: Vec<&str> = names.iter().filter(|(_, b)| *b).map(|(n, _)| *n).collect();
            if on.is_empty() {
                "no bias".to_string()
            } else {
                format!("bias {}", on.join(","))
            }
        };
        let attention = self.attention.map(|a| {
            let bias = biases(&[("q/k", a.bias.qk), ("v", a.bias.v), ("o", a.bias.out)]);
            format!("attention ({bias}; {})", a.residual.describe())
        });
        let mlp = self.mlp.map(|m| {
            let [l, r, d] = m.bias;
            let bias = biases(&[("left", l), ("right", r), ("down", d)]);
            format!("MLP {} ({bias}; {})", m.hidden, m.residual.describe())
        });
        [attention, mlp]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// Everything a checkpoint must declare about a transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerShape {
    /// Vocabulary size `V`: the width of the input vectors.
    pub vocab: usize,
    /// Width of the logits (the unembedding's rows); the vocabulary for a
    /// language model.
    pub outputs: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Width `d_head` of each head (even, for the rotary half split; MATH.md §1.6).
    pub head_dim: usize,
    /// The longest sequence the model takes.
    pub context: usize,
    /// The attention mask every block uses (MATH.md §1.7).
    pub mask: Mask,
    /// Rotary base: frequencies `θ_i = base^(−2i/d_head)` (MATH.md §1.6).
    pub rotary_base: f64,
    /// The blocks, input side first (MATH.md §1.8).
    pub blocks: Vec<BlockShape>,
}

impl TransformerShape {
    /// A transformer with a causal mask, rotary base 10⁴ and one logit per
    /// vocabulary entry: `vocab` tokens, a stream of `d_model`, `heads` heads
    /// of `head_dim`, sequences up to `context`, and `blocks`.
    pub fn causal(
        vocab: usize,
        d_model: usize,
        (heads, head_dim): (usize, usize),
        context: usize,
        blocks: Vec<BlockShape>,
    ) -> Self {
        TransformerShape {
            vocab,
            outputs: vocab,
            d_model,
            heads,
            head_dim,
            context,
            mask: Mask::Causal,
            rotary_base: 1e4,
            blocks,
        }
    }

    /// The benchmark architecture of the transformer metrics: vocab 64,
    /// d_model 32, 2 heads of 16, context 8, causal mask, and `layers` blocks
    /// of bilinear attention (no biases, residual 0.35) and a bilinear MLP of
    /// 64 units (no biases, residual 0.35).
    pub fn benchmark(layers: usize) -> Self {
        let block = BlockShape::attention_only(AttentionBias::all(false), Residual::Lerp(0.35))
            .with_mlp(64, [false; 3], Residual::Lerp(0.35));
        Self::causal(64, 32, (2, 16), 8, vec![block; layers])
    }

    /// The size of the paper's language models (EXPERIMENTS §4): vocab
    /// 4096, d_model 256, 8 heads of 32, context 256, causal mask, and
    /// `layers` attention-only blocks with biases on q/k only, added to the
    /// stream as the published checkpoints do (`x + 0.35·attention(x)`).
    pub fn paper(layers: usize) -> Self {
        let block = BlockShape::attention_only(AttentionBias::QK, Residual::Add(0.35));
        Self::causal(4096, 256, (8, 32), 256, vec![block; layers])
    }

    /// Checks widths, residual scales, the rotary half split and that every
    /// block has a component.
    pub fn validate(&self) -> Result<()> {
        if [
            self.vocab,
            self.outputs,
            self.d_model,
            self.heads,
            self.context,
        ]
        .contains(&0)
        {
            return Err(Error::EmptyTransformer);
        }
        if !(self.rotary_base.is_finite() && self.rotary_base > 0.0) {
            return Err(Error::RotaryBase {
                base: self.rotary_base,
            });
        }
        if self.head_dim == 0 || self.head_dim % 2 != 0 {
            return Err(Error::OddHeadWidth {
                head_dim: self.head_dim,
            });
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if b.attention.is_none() && b.mlp.is_none() {
                return Err(Error::EmptyBlock { block: i });
            }
            if b.mlp.is_some_and(|m| m.hidden == 0) {
                return Err(Error::EmptyMlp { block: i });
            }
            let residuals = [b.attention.map(|a| a.residual), b.mlp.map(|m| m.residual)];
            for r in residuals.into_iter().flatten() {
                r.validate(i, self.d_model, self.d_model)?;
            }
        }
        Ok(())
    }

    /// Every parameter tensor with its name and shape, in a fixed order:
    /// `embed.weight`, `blocks.{i}.attn.{q1,k1,q2,k2,v,out}.{weight,bias}`,
    /// `blocks.{i}.mlp.{left,right,down}.{weight,bias}` (components and
    /// biases where the shape has them), `unembed.weight`.
    pub fn parameter_specs(&self) -> Vec<ParameterSpec> {
        let mut recorder = SpecRecorder::default();
        self.build_parts(&mut recorder);
        recorder.specs
    }

    /// A model with PyTorch's default `nn.Linear` initialisation
    /// `U(−1/√fan_in, 1/√fan_in)`, deterministic in `seed`.
    pub fn random_model(&self, seed: u64) -> Result<Transformer> {
        self.validate()?;
        self.assemble(&mut UniformInit::new(seed, Convention::Transformer))
    }

    /// A transformer of this shape from `source`, checked by [`Transformer::new`].
    pub(crate) fn assemble(&self, source: &mut dyn ParameterSource) -> Result<Transformer> {
        let (embed, blocks, unembed) = self.build_parts(source);
        let mut t = Transformer::new(
            embed,
            blocks,
            unembed,
            self.context,
            self.mask,
            self.rotary_base,
        )?;
        t.declare_heads(self.heads, self.head_dim);
        Ok(t)
    }

    /// The layout of every component: its tensors' names, shapes and order,
    /// fetched from `source` ([`crate::layout`]): `embed.weight`, per block
    /// `blocks.{i}.attn.{q1,k1,q2,k2,v,out}` and `blocks.{i}.mlp.{left,right,down}`
    /// (weights, then biases when the shape has them), `unembed.weight`
    /// (`outputs × d_model`).
    fn build_parts(&self, source: &mut dyn ParameterSource) -> (Mat<f64>, Vec<Block>, Mat<f64>) {
        let (d, w) = (self.d_model, self.heads * self.head_dim);
        let embed = source.matrix("embed.weight".into(), d, self.vocab);
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let attention = b.attention.map(|a| {
                let prefix = format!("blocks.{i}.attn");
                let projections: [_; 5] = std::array::from_fn(|k| {
                    let name = format!("{prefix}.{}", ATTENTION_PROJECTIONS[k]);
                    source.linear(&name, w, d, a.bias.projection(k))
                });
                let out = source.linear(&format!("{prefix}.out"), d, w, a.bias.out);
                Attention::new(self.heads, self.head_dim, projections, out, a.residual)
            });
            let mlp = b.mlp.map(|m| {
                let prefix = format!("blocks.{i}.mlp");
                source.bilinear(&prefix, [d, m.hidden, d], m.bias, m.residual)
            });
            blocks.push(Block { attention, mlp });
        }
        let unembed = source.matrix("unembed.weight".into(), self.outputs, d);
        (embed, blocks, unembed)
    }
}
