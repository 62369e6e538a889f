//! Transformers of bilinear components (MATH.md §1): token embedding, per
//! block a bilinear attention and an optional bilinear MLP, each joined to
//! the residual stream by its [`Residual`] (`keep·x + mix·f(x)`), then an
//! unembedding.
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

use faer::{Mat, MatRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::model::{affine_rows, Bilinear, Fnv, Linear, ParameterSpec};
use crate::residual::Residual;

/// Which key positions a query position attends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// `M[s,t] = 1` for `t ≤ s`.
    Causal,
    /// `M[s,t] = 1` everywhere.
    Full,
}

impl Mask {
    /// `M[s,t]`.
    pub fn weight(self, s: usize, t: usize) -> f64 {
        match self {
            Mask::Causal if t > s => 0.0,
            _ => 1.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mask::Causal => "causal",
            Mask::Full => "full",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "causal" => Ok(Mask::Causal),
            "full" => Ok(Mask::Full),
            other => Err(Error::Invalid(format!(
                "unknown attention mask `{other}` (expected `causal` or `full`)"
            ))),
        }
    }
}

/// Bilinear attention joined to the stream by its residual:
/// `y = keep·x + mix·(O z + b_O)` ([`Residual::coefficients`]).
///
/// Shapes are checked when the attention joins a [`Transformer`].
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    pub(crate) heads: usize,
    pub(crate) head_dim: usize,
    /// `[heads·head_dim, d_model]` each, optional biases (added before rotary).
    pub(crate) q1: Linear,
    pub(crate) k1: Linear,
    pub(crate) q2: Linear,
    pub(crate) k2: Linear,
    pub(crate) v: Linear,
    /// Output projection `O ∈ R^(d_model × heads·head_dim)`, optional bias.
    pub(crate) out: Linear,
    pub(crate) residual: Residual,
}

/// One transformer block: attention, then an optional bilinear MLP (a square
/// [`Bilinear`] joined to the stream by its own residual).
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub(crate) attention: Attention,
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
    /// `U ∈ R^(vocab × d_model)` (no bias).
    pub(crate) unembed: Mat<f64>,
    pub(crate) context: usize,
    pub(crate) mask: Mask,
    pub(crate) rotary_base: f64,
    /// [`Transformer::fingerprint`], computed once at construction.
    fingerprint: u64,
}

/// The shape of a block's bilinear MLP.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MlpShape {
    /// Hidden units of `L`, `R` (rows) and `D` (columns).
    pub hidden: usize,
    /// Biases on all of left, right and down, or on none.
    pub bias: bool,
    pub residual: Residual,
}

/// The shape of one block.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockShape {
    /// Biases on all of q1, k1, q2, k2, v and out, or on none.
    pub attention_bias: bool,
    pub attention_residual: Residual,
    pub mlp: Option<MlpShape>,
}

/// Everything a checkpoint must declare about a transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerShape {
    pub vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub context: usize,
    pub mask: Mask,
    pub rotary_base: f64,
    pub blocks: Vec<BlockShape>,
}

/// The four rotary projections and `v`, in the order legs are numbered.
pub const ATTENTION_PROJECTIONS: [&str; 5] = ["q1", "k1", "q2", "k2", "v"];

/// Rotary embedding of position `p` as a `d×d` matrix (rotate-half form):
/// `y_j = x_j cos(p θ_{j mod d/2}) + σ_j x_{j ± d/2} sin(p θ_{j mod d/2})`,
/// `σ_j = −1` for the first half, `+1` for the second, `θ_i = base^(−2i/d)`.
pub fn rotary(position: usize, head_dim: usize, base: f64) -> Mat<f64> {
    let half = head_dim / 2;
    let mut r = Mat::zeros(head_dim, head_dim);
    for i in 0..half {
        let theta = base.powf(-2.0 * i as f64 / head_dim as f64);
        let (sin, cos) = (position as f64 * theta).sin_cos();
        r[(i, i)] = cos;
        r[(i, i + half)] = -sin;
        r[(i + half, i + half)] = cos;
        r[(i + half, i)] = sin;
    }
    r
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

impl Attention {
    /// An attention of `heads` heads of width `head_dim`: `projections` in
    /// leg order `q1, k1, q2, k2, v` (`[heads·head_dim, d_model]` each),
    /// `out` (`[d_model, heads·head_dim]`). Shapes and values are checked by
    /// [`Transformer::new`].
    pub fn new(
        heads: usize,
        head_dim: usize,
        projections: [Linear; 5],
        out: Linear,
        residual: Residual,
    ) -> Self {
        let [q1, k1, q2, k2, v] = projections;
        Attention {
            heads,
            head_dim,
            q1,
            k1,
            q2,
            k2,
            v,
            out,
            residual,
        }
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The five input projections in leg order `q1, k1, q2, k2, v`.
    pub fn projections(&self) -> [&Linear; 5] {
        [&self.q1, &self.k1, &self.q2, &self.k2, &self.v]
    }

    /// The output projection `O` and its bias.
    pub fn out(&self) -> &Linear {
        &self.out
    }

    /// How the attention joins the residual stream.
    pub fn residual(&self) -> Residual {
        self.residual
    }

    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Attention output (before residual mixing, with `b_O`) for sequences
    /// of `n` positions stacked in `x` (`sequences·n × d_model`, sequence
    /// `k` in rows `k·n..(k+1)·n`): projections, rotary and the output map
    /// run over all rows at once, the pattern within each sequence.
    fn mix(&self, x: MatRef<'_, f64>, n: usize, mask: Mask, base: f64) -> Mat<f64> {
        let dh = self.head_dim;
        let rotations: Vec<Mat<f64>> = (0..n).map(|p| rotary(p, dh, base)).collect();
        let project = |l: &Linear, rotate: bool| -> Mat<f64> {
            let mut y = affine_rows(x, l.weight.as_ref(), l.bias.as_deref());
            if rotate {
                let mut row = vec![0.0; dh];
                for i in 0..y.nrows() {
                    let r = &rotations[i % n];
                    for h in 0..self.heads {
                        for (e, v) in row.iter_mut().enumerate() {
                            *v = y[(i, h * dh + e)];
                        }
                        for e in 0..dh {
                            y[(i, h * dh + e)] = (0..dh).map(|f| r[(e, f)] * row[f]).sum();
                        }
                    }
                }
            }
            y
        };
        let (q1, k1, q2, k2, v) = (
            project(&self.q1, true),
            project(&self.k1, true),
            project(&self.q2, true),
            project(&self.k2, true),
            project(&self.v, false),
        );
        let scale = 1.0 / (dh as f64 * dh as f64);
        let mut z = Mat::zeros(x.nrows(), self.width());
        for first in (0..x.nrows()).step_by(n.max(1)) {
            for h in 0..self.heads {
                let cols = h * dh..(h + 1) * dh;
                for s in 0..n {
                    for t in 0..n {
                        let m = mask.weight(s, t);
                        if m == 0.0 {
                            continue;
                        }
                        let (s, t) = (first + s, first + t);
                        let a1: f64 = cols.clone().map(|c| q1[(s, c)] * k1[(t, c)]).sum();
                        let a2: f64 = cols.clone().map(|c| q2[(s, c)] * k2[(t, c)]).sum();
                        let w = m * a1 * a2 * scale;
                        for c in cols.clone() {
                            z[(s, c)] += w * v[(t, c)];
                        }
                    }
                }
            }
        }
        affine_rows(
            z.as_ref(),
            self.out.weight.as_ref(),
            self.out.bias.as_deref(),
        )
    }
}

/// Hands out checked parameter tensors in spec order.
struct Reader {
    tensors: std::collections::VecDeque<(ParameterSpec, Vec<f64>)>,
}

impl Reader {
    fn matrix(&mut self) -> Mat<f64> {
        let (spec, v) = self.tensors.pop_front().expect("counted");
        crate::model::matrix_from_row_major(spec.shape[0], spec.shape[1], &v)
    }
    fn vector(&mut self) -> Vec<f64> {
        self.tensors.pop_front().expect("counted").1
    }
}

fn uniform(rows: usize, cols: usize, rng: &mut StdRng) -> Mat<f64> {
    let bound = 1.0 / (cols as f64).sqrt();
    Mat::from_fn(rows, cols, |_, _| rng.random_range(-bound..bound))
}

fn uniform_linear(rows: usize, cols: usize, bias: bool, rng: &mut StdRng) -> Linear {
    let weight = uniform(rows, cols, rng);
    let bound = 1.0 / (cols as f64).sqrt();
    let bias = bias.then(|| (0..rows).map(|_| rng.random_range(-bound..bound)).collect());
    Linear { weight, bias }
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
            return Err(Error::Invalid(
                "a transformer needs vocab, d_model, heads and context ≥ 1".into(),
            ));
        }
        if !(self.rotary_base.is_finite() && self.rotary_base > 0.0) {
            return Err(Error::Invalid(format!(
                "rotary_base must be a positive number, not {}",
                self.rotary_base
            )));
        }
        if self.head_dim == 0 || self.head_dim % 2 != 0 {
            return Err(Error::Invalid(format!(
                "rotary embedding needs an even head width, not {}",
                self.head_dim
            )));
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
        let mut specs = Vec::new();
        let mut push = |name: String, shape: Vec<usize>| specs.push(ParameterSpec { name, shape });
        let w = self.heads * self.head_dim;
        push("embed.weight".into(), vec![self.d_model, self.vocab]);
        for (i, b) in self.blocks.iter().enumerate() {
            for p in ATTENTION_PROJECTIONS {
                push(format!("blocks.{i}.attn.{p}.weight"), vec![w, self.d_model]);
                if b.attention_bias {
                    push(format!("blocks.{i}.attn.{p}.bias"), vec![w]);
                }
            }
            push(format!("blocks.{i}.attn.out.weight"), vec![self.d_model, w]);
            if b.attention_bias {
                push(format!("blocks.{i}.attn.out.bias"), vec![self.d_model]);
            }
            if let Some(MlpShape { hidden, bias, .. }) = b.mlp {
                for (part, shape, len) in [
                    ("left", [hidden, self.d_model], hidden),
                    ("right", [hidden, self.d_model], hidden),
                    ("down", [self.d_model, hidden], self.d_model),
                ] {
                    push(format!("blocks.{i}.mlp.{part}.weight"), shape.to_vec());
                    if bias {
                        push(format!("blocks.{i}.mlp.{part}.bias"), vec![len]);
                    }
                }
            }
        }
        push("unembed.weight".into(), vec![self.vocab, self.d_model]);
        specs
    }

    /// A model with PyTorch's default `nn.Linear` initialisation
    /// `U(−1/√fan_in, 1/√fan_in)`, deterministic in `seed`.
    pub fn random_model(&self, seed: u64) -> Result<Transformer> {
        self.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let w = self.heads * self.head_dim;
        let embed = uniform(self.d_model, self.vocab, &mut rng);
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                let bias = b.attention_bias;
                let lin = |r, c, rng: &mut StdRng| uniform_linear(r, c, bias, rng);
                let attention = Attention {
                    heads: self.heads,
                    head_dim: self.head_dim,
                    q1: lin(w, self.d_model, &mut rng),
                    k1: lin(w, self.d_model, &mut rng),
                    q2: lin(w, self.d_model, &mut rng),
                    k2: lin(w, self.d_model, &mut rng),
                    v: lin(w, self.d_model, &mut rng),
                    out: lin(self.d_model, w, &mut rng),
                    residual: b.attention_residual,
                };
                let mlp = b.mlp.map(
                    |MlpShape {
                         hidden,
                         bias,
                         residual,
                     }| {
                        let left = uniform_linear(hidden, self.d_model, bias, &mut rng);
                        let right = uniform_linear(hidden, self.d_model, bias, &mut rng);
                        let down = uniform_linear(self.d_model, hidden, bias, &mut rng);
                        Bilinear {
                            left: left.weight,
                            right: right.weight,
                            down: down.weight,
                            left_bias: left.bias,
                            right_bias: right.bias,
                            down_bias: down.bias,
                            residual,
                        }
                    },
                );
                Block { attention, mlp }
            })
            .collect();
        let unembed = uniform(self.vocab, self.d_model, &mut rng);
        Transformer::new(
            embed,
            blocks,
            unembed,
            self.context,
            self.mask,
            self.rotary_base,
        )
    }
}

impl Block {
    /// A block of an attention and an optional MLP, checked by [`Transformer::new`].
    pub fn new(attention: Attention, mlp: Option<Bilinear>) -> Self {
        Block { attention, mlp }
    }

    /// The block's attention.
    pub fn attention(&self) -> &Attention {
        &self.attention
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
            fingerprint: 0,
        };
        t.validate()?;
        t.fingerprint = t.compute_fingerprint();
        Ok(t)
    }

    fn validate(&self) -> Result<()> {
        let (d, vocab) = self.embed.shape();
        check_shape("embed.weight", self.embed.as_ref(), d, vocab)?;
        check_shape("unembed.weight", self.unembed.as_ref(), vocab, d)?;
        let first = self.blocks.first().map(|b| &b.attention);
        let (heads, head_dim) = first.map_or((1, 2), |a| (a.heads, a.head_dim));
        for (i, b) in self.blocks.iter().enumerate() {
            let a = &b.attention;
            if (a.heads, a.head_dim) != (heads, head_dim) {
                return Err(Error::Invalid(format!(
                    "block {i}: {}×{} heads differ from block 0's {heads}×{head_dim}",
                    a.heads, a.head_dim
                )));
            }
            let has = a.q1.bias.is_some();
            let named = ATTENTION_PROJECTIONS
                .iter()
                .copied()
                .zip(a.projections())
                .chain([("out", &a.out)]);
            for (name, l) in named {
                if l.bias.is_some() != has {
                    return Err(Error::Invalid(format!(
                        "block {i}: attention biases must be on all of q1, k1, q2, k2, v, out or on none (`{name}` differs from `q1`)"
                    )));
                }
            }
            if let Some(m) = &b.mlp {
                let has = m.left_bias.is_some();
                if m.right_bias.is_some() != has || m.down_bias.is_some() != has {
                    return Err(Error::Invalid(format!(
                        "block {i}: MLP biases must be on all of left, right, down or on none"
                    )));
                }
            }
            let w = a.width();
            for (name, l) in ATTENTION_PROJECTIONS.iter().zip(a.projections()) {
                let n = format!("blocks.{i}.attn.{name}");
                check_shape(&format!("{n}.weight"), l.weight.as_ref(), w, d)?;
                check_bias(&format!("{n}.bias"), &l.bias, w)?;
            }
            check_shape(
                &format!("blocks.{i}.attn.out.weight"),
                a.out.weight.as_ref(),
                d,
                w,
            )?;
            check_bias(&format!("blocks.{i}.attn.out.bias"), &a.out.bias, d)?;
            if let Some(m) = &b.mlp {
                let h = m.left.nrows();
                let n = format!("blocks.{i}.mlp");
                check_shape(&format!("{n}.left.weight"), m.left.as_ref(), h, d)?;
                check_shape(&format!("{n}.right.weight"), m.right.as_ref(), h, d)?;
                check_shape(&format!("{n}.down.weight"), m.down.as_ref(), d, h)?;
                check_bias(&format!("{n}.left.bias"), &m.left_bias, h)?;
                check_bias(&format!("{n}.right.bias"), &m.right_bias, h)?;
                check_bias(&format!("{n}.down.bias"), &m.down_bias, d)?;
            }
        }
        self.shape().validate()
    }

    /// The declared shape (what a checkpoint stores beside the weights).
    pub fn shape(&self) -> TransformerShape {
        let first = self.blocks.first().map(|b| &b.attention);
        TransformerShape {
            vocab: self.vocab(),
            d_model: self.d_model(),
            heads: first.map_or(1, |a| a.heads),
            head_dim: first.map_or(2, |a| a.head_dim),
            context: self.context,
            mask: self.mask,
            rotary_base: self.rotary_base,
            blocks: self
                .blocks
                .iter()
                .map(|b| BlockShape {
                    attention_bias: b.attention.q1.bias.is_some(),
                    attention_residual: b.attention.residual,
                    mlp: b.mlp.as_ref().map(|m| MlpShape {
                        hidden: m.left.nrows(),
                        bias: m.left_bias.is_some(),
                        residual: m.residual,
                    }),
                })
                .collect(),
        }
    }

    /// Vocabulary size (input and output width).
    pub fn vocab(&self) -> usize {
        self.embed.ncols()
    }

    /// The embedding `E ∈ R^(d_model × vocab)`.
    pub fn embedding(&self) -> MatRef<'_, f64> {
        self.embed.as_ref()
    }

    /// The unembedding `U ∈ R^(vocab × d_model)`.
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
            let a = &b.attention;
            for l in a.projections().into_iter().chain([&a.out]) {
                out.push(rows(&l.weight));
                if let Some(bias) = &l.bias {
                    out.push(bias.clone());
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
        let specs = shape.parameter_specs();
        crate::model::check_parameter_values(&specs, &values)?;
        let mut reader = Reader {
            tensors: specs.into_iter().zip(values).collect(),
        };
        let embed = reader.matrix();
        let mut blocks = Vec::new();
        for b in &shape.blocks {
            let mut linear = || Linear {
                weight: reader.matrix(),
                bias: b.attention_bias.then(|| reader.vector()),
            };
            let (q1, k1, q2, k2, v, out) =
                (linear(), linear(), linear(), linear(), linear(), linear());
            let attention = Attention {
                heads: shape.heads,
                head_dim: shape.head_dim,
                q1,
                k1,
                q2,
                k2,
                v,
                out,
                residual: b.attention_residual,
            };
            let mlp = b.mlp.map(|MlpShape { bias, residual, .. }| {
                let mut part = || (reader.matrix(), bias.then(|| reader.vector()));
                let ((left, left_bias), (right, right_bias), (down, down_bias)) =
                    (part(), part(), part());
                Bilinear {
                    left,
                    right,
                    down,
                    left_bias,
                    right_bias,
                    down_bias,
                    residual,
                }
            });
            blocks.push(Block { attention, mlp });
        }
        let unembed = reader.matrix();
        Transformer::new(
            embed,
            blocks,
            unembed,
            shape.context,
            shape.mask,
            shape.rotary_base,
        )
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
            b.attention_residual.hash_into(&mut h);
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

    /// Logits `n × vocab` for one input sequence `x` (`n × vocab`: one-hot
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
            return Err(Error::Invalid(format!(
                "a sequence of {} positions does not fit the context of {}",
                x.nrows(),
                self.context
            )));
        }
        Ok(())
    }

    /// The residual stream entering the first block, `x Eᵀ` (`n × d_model`),
    /// for inputs `x` of `n × vocab` (not checked here; see [`Self::forward`]).
    pub fn embed(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        affine_rows(x, self.embed.as_ref(), None)
    }

    /// Logits `n × vocab` from a residual stream `r` (`n × d_model`) entering
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
            let a = &b.attention;
            let z = a.mix(r.as_ref(), n, self.mask, self.rotary_base);
            r = a.residual.apply(r.as_ref(), z);
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
            return Err(Error::Invalid(format!(
                "{} rows do not stack sequences of {n} positions",
                x.nrows()
            )));
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
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
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
            .map(|b| 1 + usize::from(b.mlp.is_some()))
            .sum()
    }
}
