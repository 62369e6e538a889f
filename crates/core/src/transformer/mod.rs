//! Transformers of bilinear components (MATH.md §1): token embedding, per
//! block a bilinear attention and a bilinear MLP (either may be absent), each
//! joined to the residual stream by its [`Residual`](crate::Residual)
//! (`keep·x + mix·f(x)`), then an unembedding to `outputs` logits.
//!
//! Bilinear attention, per head of width `d_head`, positions `s` (query) and
//! `t` (key):
//!
//! ```text
//! z_s = O Σ_t M[s,t] · (q1_s·k1_t)(q2_s·k2_t) / d_head² · v_t
//! ```
//!
//! with `q1, k1, q2, k2, v` affine maps of the residual stream split into
//! heads, rotary embedding ("rotate half" form, `θ_i = base^(−2i/d_head)`) on
//! the four q/k projections, and `M` causal (lower triangular, diagonal
//! included) or all ones. As a polynomial of the input sequence it is a
//! degree-5 term (legs q1, q2 at `s`; k1, k2, v at `t`), symmetric under
//! swapping `(Q1,K1)` with `(Q2,K2)`.
//!
//! One weight set drives [`Transformer::forward`] (evaluation, Monte-Carlo)
//! and the exact moment propagation of [`crate::sequence`]. Weights are f64,
//! matrices in PyTorch layout `[out, in]`.

mod attention;
mod shape;

pub use attention::{rotary, Attention, Mask, ATTENTION_PROJECTIONS};
pub use shape::{AttentionBias, AttentionShape, BlockShape, MlpShape, TransformerShape};

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::model::{affine_rows, Bilinear, Fnv};

/// One transformer block: an optional attention, then an optional bilinear
/// MLP (a square [`Bilinear`] joined to the stream by its own residual); at
/// least one of the two.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub(crate) attention: Option<Attention>,
    pub(crate) mlp: Option<Bilinear>,
}

/// Token embedding → blocks → unembedding, on sequences of up to `context`
/// positions. Built only through [`Transformer::new`] or
/// [`Transformer::from_parameters`], which check every shape and weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Transformer {
    /// `E ∈ R^(d_model × vocab)` (no bias).
    pub(crate) embed: Mat<f64>,
    pub(crate) blocks: Vec<Block>,
    /// `U ∈ R^(outputs × d_model)` (no bias).
    pub(crate) unembed: Mat<f64>,
    pub(crate) context: usize,
    pub(crate) mask: Mask,
    pub(crate) rotary_base: f64,
    /// `(heads, head_dim)` of every attention; for a transformer without
    /// attention, what its shape declares (one head of width 2 by default).
    heads: (usize, usize),
    /// [`Transformer::fingerprint`], computed once at construction.
    fingerprint: u64,
}

fn check_finite(name: &str, m: MatRef<'_, f64>) -> Result<()> {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            let value = m[(i, j)];
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    tensor: name.to_string(),
                    index: i * m.ncols() + j,
                    value,
                });
            }
        }
    }
    Ok(())
}

fn check_shape(name: &str, m: MatRef<'_, f64>, rows: usize, cols: usize) -> Result<()> {
    if m.nrows() != rows || m.ncols() != cols {
        return Err(Error::Shape {
            tensor: name.to_string(),
            expected: vec![rows, cols],
            found: vec![m.nrows(), m.ncols()],
        });
    }
    check_finite(name, m)
}

fn check_bias(name: &str, bias: &Option<Vec<f64>>, len: usize) -> Result<()> {
    if let Some(b) = bias {
        if b.len() != len {
            return Err(Error::Shape {
                tensor: name.to_string(),
                expected: vec![len],
                found: vec![b.len()],
            });
        }
        if let Some((index, &value)) = b.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                tensor: name.to_string(),
                index,
                value,
            });
        }
    }
    Ok(())
}

/// Shapes, values and bias groups of block `block`'s attention on a stream of width `d`.
fn check_attention(block: usize, a: &Attention, d: usize) -> Result<()> {
    let named = || ATTENTION_PROJECTIONS.iter().copied().zip(a.projections());
    if let Some((differs, _)) = named()
        .take(4)
        .find(|(_, l)| l.bias.is_some() != a.q1.bias.is_some())
    {
        return Err(Error::AttentionBiases { block, differs });
    }
    let w = a.width();
    for (name, l) in named() {
        let n = format!("blocks.{block}.attn.{name}");
        check_shape(&format!("{n}.weight"), l.weight.as_ref(), w, d)?;
        check_bias(&format!("{n}.bias"), &l.bias, w)?;
    }
    let n = format!("blocks.{block}.attn.out");
    check_shape(&format!("{n}.weight"), a.out.weight.as_ref(), d, w)?;
    check_bias(&format!("{n}.bias"), &a.out.bias, d)
}

/// Shapes and values of block `block`'s MLP on a stream of width `d`.
fn check_mlp(block: usize, m: &Bilinear, d: usize) -> Result<()> {
    let h = m.left.nrows();
    let n = format!("blocks.{block}.mlp");
    check_shape(&format!("{n}.left.weight"), m.left.as_ref(), h, d)?;
    check_shape(&format!("{n}.right.weight"), m.right.as_ref(), h, d)?;
    check_shape(&format!("{n}.down.weight"), m.down.as_ref(), d, h)?;
    check_bias(&format!("{n}.left.bias"), &m.left_bias, h)?;
    check_bias(&format!("{n}.right.bias"), &m.right_bias, h)?;
    check_bias(&format!("{n}.down.bias"), &m.down_bias, d)
}

impl Block {
    /// A block of an optional attention and an optional MLP, checked by
    /// [`Transformer::new`].
    pub fn new(attention: Option<Attention>, mlp: Option<Bilinear>) -> Self {
        Block { attention, mlp }
    }

    /// The block's attention, if any.
    pub fn attention(&self) -> Option<&Attention> {
        self.attention.as_ref()
    }

    /// The block's bilinear MLP, if any.
    pub fn mlp(&self) -> Option<&Bilinear> {
        self.mlp.as_ref()
    }
}

impl Transformer {
    /// A transformer, checked: shapes chain, residual scales in `[0, 1]`,
    /// even head width, every weight finite.
    pub fn new(
        embed: Mat<f64>,
        blocks: Vec<Block>,
        unembed: Mat<f64>,
        context: usize,
        mask: Mask,
        rotary_base: f64,
    ) -> Result<Self> {
        let mut t = Transformer {
            embed,
            blocks,
            unembed,
            context,
            mask,
            rotary_base,
            heads: (1, 2),
            fingerprint: 0,
        };
        if let Some(a) = t.blocks.iter().find_map(|b| b.attention.as_ref()) {
            t.heads = (a.heads, a.head_dim);
        }
        t.validate()?;
        t.fingerprint = t.compute_fingerprint();
        Ok(t)
    }

    fn validate(&self) -> Result<()> {
        let (d, vocab) = self.embed.shape();
        check_shape("embed.weight", self.embed.as_ref(), d, vocab)?;
        let outputs = self.unembed.nrows();
        check_shape("unembed.weight", self.unembed.as_ref(), outputs, d)?;
        let (heads, head_dim) = self.heads;
        for (i, b) in self.blocks.iter().enumerate() {
            if let Some(a) = &b.attention {
                if (a.heads, a.head_dim) != (heads, head_dim) {
                    return Err(Error::HeadsDiffer {
                        block: i,
                        heads: a.heads,
                        head_dim: a.head_dim,
                        first_heads: heads,
                        first_head_dim: head_dim,
                    });
                }
                check_attention(i, a, d)?;
            }
            if let Some(m) = &b.mlp {
                check_mlp(i, m, d)?;
            }
        }
        self.shape().validate()
    }

    /// Keeps the heads a shape declares for a transformer without attention
    /// (where they shape nothing), so that its shape round-trips.
    pub(crate) fn declare_heads(&mut self, heads: usize, head_dim: usize) {
        if self.blocks.iter().all(|b| b.attention.is_none()) {
            self.heads = (heads, head_dim);
        }
    }

    /// The declared shape (what a checkpoint stores beside the weights).
    pub fn shape(&self) -> TransformerShape {
        let (heads, head_dim) = self.heads;
        TransformerShape {
            vocab: self.vocab(),
            outputs: self.outputs(),
            d_model: self.d_model(),
            heads,
            head_dim,
            context: self.context,
            mask: self.mask,
            rotary_base: self.rotary_base,
            blocks: self
                .blocks
                .iter()
                .map(|b| BlockShape {
                    attention: b.attention.as_ref().map(|a| AttentionShape {
                        bias: AttentionBias {
                            qk: a.q1.bias.is_some(),
                            v: a.v.bias.is_some(),
                            out: a.out.bias.is_some(),
                        },
                        residual: a.residual,
                    }),
                    mlp: b.mlp.as_ref().map(|m| MlpShape {
                        hidden: m.left.nrows(),
                        bias: [&m.left_bias, &m.right_bias, &m.down_bias].map(Option::is_some),
                        residual: m.residual,
                    }),
                })
                .collect(),
        }
    }

    /// Vocabulary size (the input width).
    pub fn vocab(&self) -> usize {
        self.embed.ncols()
    }

    /// Width of the logits (the vocabulary for a language model).
    pub fn outputs(&self) -> usize {
        self.unembed.nrows()
    }

    /// The embedding `E ∈ R^(d_model × vocab)`.
    pub fn embedding(&self) -> MatRef<'_, f64> {
        self.embed.as_ref()
    }

    /// The unembedding `U ∈ R^(outputs × d_model)`.
    pub fn unembedding(&self) -> MatRef<'_, f64> {
        self.unembed.as_ref()
    }

    /// The blocks in order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The longest sequence the model takes.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The attention mask of every block.
    pub fn mask(&self) -> Mask {
        self.mask
    }

    /// Base of the rotary embedding.
    pub fn rotary_base(&self) -> f64 {
        self.rotary_base
    }

    /// Width of the residual stream.
    pub fn d_model(&self) -> usize {
        self.embed.nrows()
    }

    /// Every parameter's values, row-major, in [`TransformerShape::parameter_specs`] order.
    pub fn parameters(&self) -> Vec<Vec<f64>> {
        let rows = |m: &Mat<f64>| crate::model::matrix_to_row_major(m.as_ref());
        let mut out = vec![rows(&self.embed)];
        for b in &self.blocks {
            if let Some(a) = &b.attention {
                for l in a.projections().into_iter().chain([&a.out]) {
                    out.push(rows(&l.weight));
                    if let Some(bias) = &l.bias {
                        out.push(bias.clone());
                    }
                }
            }
            if let Some(m) = &b.mlp {
                for (w, bias) in [
                    (&m.left, &m.left_bias),
                    (&m.right, &m.right_bias),
                    (&m.down, &m.down_bias),
                ] {
                    out.push(rows(w));
                    if let Some(bias) = bias {
                        out.push(bias.clone());
                    }
                }
            }
        }
        out.push(rows(&self.unembed));
        out
    }

    /// A transformer from a shape and values in [`TransformerShape::parameter_specs`] order.
    pub fn from_parameters(shape: &TransformerShape, values: Vec<Vec<f64>>) -> Result<Self> {
        shape.validate()?;
        crate::model::check_parameter_values(&shape.parameter_specs(), &values)?;
        shape.assemble(&mut crate::layout::ValueReader::new(values))
    }

    /// A 64-bit FNV-1a hash of the shape and every weight's bits (computed
    /// once, at construction).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn compute_fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        let shape = self.shape();
        for (spec, values) in shape.parameter_specs().iter().zip(self.parameters()) {
            for &d in &spec.shape {
                h.eat(d as u64);
            }
            for v in values {
                h.eat(v.to_bits());
            }
        }
        for b in &shape.blocks {
            match b.attention {
                Some(a) => a.residual.hash_into(&mut h),
                None => h.eat(3.0f64.to_bits()),
            }
            match b.mlp {
                Some(m) => m.residual.hash_into(&mut h),
                None => h.eat(2.0f64.to_bits()),
            }
        }
        h.eat(self.context as u64);
        h.eat(matches!(self.mask, Mask::Causal) as u64);
        h.eat(self.rotary_base.to_bits());
        h.finish()
    }

    /// Logits `n × outputs` for one input sequence `x` (`n × vocab`: one-hot
    /// tokens, or any real vectors such as Gaussian inputs), `n ≤ context`.
    pub fn forward(&self, x: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.check_sequence(x, ("input width", "model vocab", self.vocab()))?;
        self.forward_residual(self.embed(x).as_ref())
    }

    /// Refuses a sequence `x` whose width is not `expected` (described as
    /// `(what, whose width, width)` in the error) or whose length is zero or
    /// beyond the context.
    fn check_sequence(
        &self,
        x: MatRef<'_, f64>,
        (what, whose, width): (&'static str, &str, usize),
    ) -> Result<()> {
        if x.ncols() != width {
            return Err(Error::Mismatch {
                what,
                a: format!("{width} ({whose})"),
                b: format!("{} (inputs)", x.ncols()),
            });
        }
        if x.nrows() == 0 || x.nrows() > self.context {
            return Err(Error::SequenceLength {
                positions: x.nrows(),
                context: self.context,
            });
        }
        Ok(())
    }

    /// The residual stream entering the first block, `x Eᵀ` (`n × d_model`),
    /// for inputs `x` of `n × vocab` (not checked here; see [`Self::forward`]).
    pub fn embed(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        affine_rows(x, self.embed.as_ref(), None)
    }

    /// Logits `n × outputs` from a residual stream `r` (`n × d_model`) entering
    /// the first block: the blocks and the unembedding, without the
    /// embedding. `forward(x) == forward_residual(embed(x))`.
    pub fn forward_residual(&self, r: MatRef<'_, f64>) -> Result<Mat<f64>> {
        self.check_sequence(
            r,
            ("residual-stream width", "model d_model", self.d_model()),
        )?;
        let r = self.blocks_forward(r, r.nrows());
        Ok(affine_rows(r.as_ref(), self.unembed.as_ref(), None))
    }

    /// The residual stream after every block, for the streams `r` of
    /// sequences of `n` positions stacked (one sequence when `n` is all rows).
    fn blocks_forward(&self, r: MatRef<'_, f64>, n: usize) -> Mat<f64> {
        let mut r = r.to_owned();
        for b in &self.blocks {
            if let Some(a) = &b.attention {
                let z = a.mix(r.as_ref(), n, self.mask, self.rotary_base);
                r = a.residual.apply(r.as_ref(), z);
            }
            if let Some(m) = &b.mlp {
                r = crate::model::bilinear_rows(r.as_ref(), m);
            }
        }
        r
    }

    /// Logits of many sequences of `n` positions at once: `x` stacks them
    /// (`sequences·n × vocab`, sequence `k` in rows `k·n..(k+1)·n`), and so
    /// does the result. Equal to [`Self::forward`] per sequence; every
    /// position-wise map (embedding, projections, MLPs, unembedding) runs as
    /// one product over all rows.
    pub fn forward_stacked(&self, x: MatRef<'_, f64>, n: usize) -> Result<Mat<f64>> {
        if n == 0 || x.nrows() == 0 || x.nrows() % n != 0 {
            return Err(Error::UnstackedRows {
                rows: x.nrows(),
                positions: n,
            });
        }
        self.check_sequence(
            x.subrows(0, n),
            ("input width", "model vocab", self.vocab()),
        )?;
        let r = self.blocks_forward(self.embed(x).as_ref(), n);
        Ok(affine_rows(r.as_ref(), self.unembed.as_ref(), None))
    }

    /// Logits of one token sequence (ids `< vocab`).
    pub fn forward_tokens(&self, tokens: &[u32]) -> Result<Mat<f64>> {
        let vocab = self.vocab();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::TokenOutOfVocabulary { token: bad, vocab });
        }
        let x = Mat::from_fn(tokens.len(), vocab, |p, j| {
            f64::from(u8::from(tokens[p] as usize == j))
        });
        self.forward(x.as_ref())
    }

    /// Number of polynomial components (attentions and MLPs).
    pub fn polynomial_components(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| usize::from(b.attention.is_some()) + usize::from(b.mlp.is_some()))
            .sum()
    }
}
