//! What a checkpoint declares about a transformer: widths, heads, mask,
//! rotary base and each block's components, their parameter names and
//! shapes, and random initialisation.

use faer::Mat;

use super::{Attention, Block, Mask, Transformer, ATTENTION_PROJECTIONS};
use crate::error::{Error, Result};
use crate::layout::{Convention, ParameterSource, SpecRecorder, UniformInit};
use crate::model::ParameterSpec;
use crate::residual::Residual;

/// The shape of a block's bilinear MLP.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MlpShape {
    /// Hidden units of `L`, `R` (rows) and `D` (columns).
    pub hidden: usize,
    /// Biases on all of left, right and down, or on none.
    pub bias: bool,
    /// How the MLP's output joins the stream (MATH.md §1.3).
    pub residual: Residual,
}

/// The shape of one block.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockShape {
    /// Biases on all of q1, k1, q2, k2, v and out, or on none.
    pub attention_bias: bool,
    /// How the attention's output joins the stream (MATH.md §1.5).
    pub attention_residual: Residual,
    /// The bilinear MLP after the attention, or `None` for an attention-only block.
    pub mlp: Option<MlpShape>,
}

/// Everything a checkpoint must declare about a transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerShape {
    /// Vocabulary size `V`: the width of the input vectors and of the logits.
    pub vocab: usize,
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
    /// The benchmark architecture of the transformer metrics: vocab 64,
    /// d_model 32, 2 heads of 16, context 8, causal mask, and `layers` blocks
    /// of bilinear attention (no biases, residual 0.35) and a bilinear MLP of
    /// 64 units (no biases, residual 0.35).
    pub fn benchmark(layers: usize) -> Self {
        TransformerShape {
            vocab: 64,
            d_model: 32,
            heads: 2,
            head_dim: 16,
            context: 8,
            mask: Mask::Causal,
            rotary_base: 1e4,
            blocks: vec![
                BlockShape {
                    attention_bias: false,
                    attention_residual: Residual::Lerp(0.35),
                    mlp: Some(MlpShape {
                        hidden: 64,
                        bias: false,
                        residual: Residual::Lerp(0.35),
                    }),
                };
                layers
            ],
        }
    }

    /// The size of the paper's language models (EXPERIMENTS §4): vocab
    /// 4096, d_model 256, 8 heads of 32, context 256, causal mask, and
    /// `layers` attention-only blocks with biases, added to the stream as the
    /// published checkpoints do (`x + 0.35·attention(x)`).
    pub fn paper(layers: usize) -> Self {
        TransformerShape {
            vocab: 4096,
            d_model: 256,
            heads: 8,
            head_dim: 32,
            context: 256,
            mask: Mask::Causal,
            rotary_base: 1e4,
            blocks: vec![
                BlockShape {
                    attention_bias: true,
                    attention_residual: Residual::Add(0.35),
                    mlp: None,
                };
                layers
            ],
        }
    }

    /// Checks widths, residual scales and the rotary half split.
    pub fn validate(&self) -> Result<()> {
        if self.vocab == 0 || self.d_model == 0 || self.heads == 0 || self.context == 0 {
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
            let residuals = [Some(b.attention_residual), b.mlp.map(|m| m.residual)];
            for r in residuals.into_iter().flatten() {
                r.validate(i, self.d_model, self.d_model)?;
            }
        }
        Ok(())
    }

    /// Every parameter tensor with its name and shape, in a fixed order:
    /// `embed.weight`, `blocks.{i}.attn.{q1,k1,q2,k2,v,out}.{weight,bias}`,
    /// `blocks.{i}.mlp.{left,right,down}.{weight,bias}`, `unembed.weight`.
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
        Transformer::new(
            embed,
            blocks,
            unembed,
            self.context,
            self.mask,
            self.rotary_base,
        )
    }

    /// The layout of every component: its tensors' names, shapes and order,
    /// fetched from `source` ([`crate::layout`]): `embed.weight`, per block
    /// `blocks.{i}.attn.{q1,k1,q2,k2,v,out}` and `blocks.{i}.mlp.{left,right,down}`
    /// (weights, then biases when the shape has them), `unembed.weight`.
    fn build_parts(&self, source: &mut dyn ParameterSource) -> (Mat<f64>, Vec<Block>, Mat<f64>) {
        let (d, w) = (self.d_model, self.heads * self.head_dim);
        let embed = source.matrix("embed.weight".into(), d, self.vocab);
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let bias = b.attention_bias;
            let [q1, k1, q2, k2, v] = ATTENTION_PROJECTIONS
                .map(|p| source.linear(&format!("blocks.{i}.attn.{p}"), w, d, bias));
            let out = source.linear(&format!("blocks.{i}.attn.out"), d, w, bias);
            let attention = Attention {
                heads: self.heads,
                head_dim: self.head_dim,
                q1,
                k1,
                q2,
                k2,
                v,
                out,
                residual: b.attention_residual,
            };
            let mlp = b.mlp.map(|m| {
                source.bilinear(
                    &format!("blocks.{i}.mlp"),
                    [d, m.hidden, d],
                    [m.bias; 3],
                    m.residual,
                )
            });
            blocks.push(Block { attention, mlp });
        }
        let unembed = source.matrix("unembed.weight".into(), self.vocab, d);
        (embed, blocks, unembed)
    }
}
