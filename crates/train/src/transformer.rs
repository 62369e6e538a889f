//! Candle parameters and forward pass of a bilinear-attention transformer
//! ([`tensim_core::transformer`], MATH.md §1), for training on token
//! sequences.
//!
//! The math is the core's, in f32 and batched over sequences:
//!
//! * embedding: row `x_t` of `Eᵀ` (a one-hot input times `Eᵀ`);
//! * per block, attention: `q1, k1, q2, k2, v = x Wᵀ + b` split into heads,
//!   rotary ("rotate half": `x·cos + [−x₂, x₁]·sin`, `θ_i = base^(−2i/d_head)`,
//!   cos and sin repeated over both halves, position `p` = index in the
//!   window) on q1, k1, q2, k2; pattern
//!   `M[s,t]·(q1_s·k1_t)(q2_s·k2_t)/d_head²` with `M` causal or all ones;
//!   `z_s = Σ_t pattern[s,t] v_t`, heads concatenated, `O z + b_O`; joined
//!   by its residual `keep·x + mix·f(x)`; biases per group (q/k, v, O) as
//!   the shape says;
//! * then the block's bilinear MLP `D((Lx+b_L)⊙(Rx+b_R))+b_D` with its own
//!   residual; either component may be absent;
//! * unembedding `x Uᵀ` to `outputs` logits.
//!
//! Parameters are one [`Var`] per tensor of
//! [`TransformerShape::parameter_specs`], same names, order and PyTorch
//! layout `[out, in]`, read by name in the forward pass, so [`TransformerNetwork::to_transformer`] is exact up
//! to the f32 → f64 widening and a checkpoint written from it loads as the
//! same model.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use tensim_core::transformer::{Transformer, TransformerShape, ATTENTION_PROJECTIONS};

use crate::network::{affine, join_residual, values_of, vars_from_values};
use crate::{Result, TrainError};

/// Trainable parameters of a transformer, one [`Var`] per parameter spec.
pub struct TransformerNetwork {
    shape: TransformerShape,
    names: Vec<String>,
    vars: Vec<Var>,
    /// Position of each parameter in `names` and `vars`, by name.
    index: HashMap<String, usize>,
    device: Device,
    /// `cos(p θ_{j mod d/2})`, `[context, head_dim]`.
    cos: Tensor,
    /// `sin(p θ_{j mod d/2})`, `[context, head_dim]`.
    sin: Tensor,
    /// `M[s,t] / d_head²`, `[context, context]`.
    mask: Tensor,
}

impl TransformerNetwork {
    /// Parameters initialised like PyTorch's `nn.Linear` from `seed`: the
    /// core's [`TransformerShape::random_model`], rounded to f32, so every
    /// device starts from the same weights.
    pub fn init(shape: &TransformerShape, seed: u64, device: &Device) -> Result<Self> {
        Self::from_transformer(&shape.random_model(seed)?, device)
    }

    /// Parameters copied from a core transformer (rounded to f32).
    pub fn from_transformer(model: &Transformer, device: &Device) -> Result<Self> {
        let shape = model.shape();
        let specs = shape.parameter_specs();
        let vars = vars_from_values(&specs, model.parameters(), device)?;
        let (cos, sin) = rotary_tables(&shape, device)?;
        let mask = mask_table(&shape, device)?;
        let names: Vec<String> = specs.into_iter().map(|s| s.name).collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(k, n)| (n.clone(), k))
            .collect();
        Ok(TransformerNetwork {
            names,
            index,
            shape,
            vars,
            device: device.clone(),
            cos,
            sin,
            mask,
        })
    }

    /// The weights as a core transformer (f64).
    pub fn to_transformer(&self) -> Result<Transformer> {
        Ok(Transformer::from_parameters(
            &self.shape,
            values_of(&self.vars)?,
        )?)
    }

    pub fn shape(&self) -> &TransformerShape {
        &self.shape
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variables the optimiser updates, in parameter-spec order.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.clone()
    }

    /// `(name, variable)` pairs in parameter-spec order.
    pub fn named_vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.names.iter().map(String::as_str).zip(&self.vars)
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// Token rows as a `[batch, n]` u32 tensor on the network's device,
    /// checked: at least one row, rows of one length `1 ≤ n ≤ context`, ids
    /// `< vocab`.
    pub fn tokens_tensor(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let n = check_rows(rows, &self.shape, Ids::Tokens("token"))?;
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (rows.len(), n), &self.device)?)
    }

    /// Logits `[batch, n, outputs]` (f32) of token rows.
    pub fn forward_rows(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        self.forward(&self.tokens_tensor(rows)?)
    }

    /// Logits `[batch, n, outputs]` (f32) for token ids `[batch, n]` (u32,
    /// `n ≤ context`, ids `< vocab`; [`Self::tokens_tensor`] checks them).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (batch, n) = tokens.dims2()?;
        let s = &self.shape;
        if n == 0 || n > s.context {
            return Err(TrainError::Invalid(format!(
                "a sequence of {n} positions does not fit the context of {}",
                s.context
            )));
        }
        // x = onehot(tokens) Eᵀ: column `token` of E.
        let ids = tokens.flatten_all()?;
        let embed = self
            .param("embed.weight")
            .expect("every shape has an embedding");
        let mut x = embed.t()?.contiguous()?.index_select(&ids, 0)?; // [rows, d]
        for (i, block) in s.blocks.iter().enumerate() {
            if let Some(a) = block.attention {
                let y = self.attention(i, &x, (batch, n))?;
                x = join_residual(&x, y, a.residual)?;
            }
            if let Some(m) = block.mlp {
                let name = |part: &str, what: &str| format!("blocks.{i}.mlp.{part}.{what}");
                let map = |part: &str, x: &Tensor| -> Result<Tensor> {
                    let w = self.param(&name(part, "weight")).expect("MLP weights");
                    affine(x, w, self.param(&name(part, "bias")))
                };
                let hidden = (map("left", &x)? * map("right", &x)?)?;
                x = join_residual(&x, map("down", &hidden)?, m.residual)?;
            }
        }
        debug_assert_eq!(x.dims(), [batch * n, s.d_model]);
        let unembed = self
            .param("unembed.weight")
            .expect("every shape has an unembedding");
        Ok(x.matmul(&unembed.t()?)?.reshape((batch, n, s.outputs))?)
    }

    /// The parameter called `name`, when the shape has it.
    fn param(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&k| self.vars[k].as_tensor())
    }

    /// Block `block`'s attention output `O z + b_O` (before the residual)
    /// for the stream `x` of `batch` sequences of `n` positions
    /// (`[batch·n, d_model]`).
    fn attention(&self, block: usize, x: &Tensor, (batch, n): (usize, usize)) -> Result<Tensor> {
        let s = &self.shape;
        let (heads, dh) = (s.heads, s.head_dim);
        let width = heads * dh;
        let name = |p: &str, what: &str| format!("blocks.{block}.attn.{p}.{what}");
        // q1, k1, q2, k2, v in one product: [rows, 5·width]; a projection
        // without a bias adds zeros when another one has a bias.
        let weights = ATTENTION_PROJECTIONS
            .map(|p| self.param(&name(p, "weight")).expect("projection weights"));
        let biases = ATTENTION_PROJECTIONS.map(|p| self.param(&name(p, "bias")));
        let bias = if biases.iter().any(Option::is_some) {
            let zeros = Tensor::zeros(width, DType::F32, &self.device)?;
            let parts: Vec<&Tensor> = biases.iter().map(|b| b.unwrap_or(&zeros)).collect();
            Some(Tensor::cat(&parts, 0)?)
        } else {
            None
        };
        let projected = affine(x, &Tensor::cat(&weights, 0)?, bias.as_ref())?
            .reshape((batch, n, 5, heads, dh))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?; // [5, batch, heads, n, dh]
        let cos = self.cos.narrow(0, 0, n)?;
        let sin = self.sin.narrow(0, 0, n)?;
        let mask = self.mask.narrow(0, 0, n)?.narrow(1, 0, n)?;
        let qk = rotate(&projected.narrow(0, 0, 4)?, &cos, &sin)?.reshape((
            2,
            2,
            batch * heads,
            n,
            dh,
        ))?; // [(q1,k1),(q2,k2)]
        let groups = 2 * batch * heads;
        let q = qk.narrow(1, 0, 1)?.reshape((groups, n, dh))?; // q1 then q2
        let k = qk.narrow(1, 1, 1)?.reshape((groups, n, dh))?;
        let v = projected.get(4)?.reshape((batch * heads, n, dh))?;
        let scores = q
            .matmul(&k.transpose(1, 2)?)?
            .reshape((2, batch * heads, n, n))?;
        let pattern = (scores.get(0)? * scores.get(1)?)?.broadcast_mul(&mask)?;
        let z = pattern
            .matmul(&v)? // [b·h, n, dh]
            .reshape((batch, heads, n, dh))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch * n, width))?;
        let out = self
            .param(&name("out", "weight"))
            .expect("output projection");
        affine(&z, out, self.param(&name("out", "bias")))
    }
}

/// What a row of ids holds, which bounds its ids.
#[derive(Clone, Copy)]
pub(crate) enum Ids {
    /// Input tokens (`"input"` or `"token"` rows): below `vocab`.
    Tokens(&'static str),
    /// Next-token targets: they index the logits, so below `outputs`.
    Targets,
}

impl Ids {
    fn name(self) -> &'static str {
        match self {
            Ids::Tokens(what) => what,
            Ids::Targets => "target",
        }
    }

    /// The exclusive bound of the ids and what it is.
    fn bound(self, shape: &TransformerShape) -> (usize, &'static str) {
        match self {
            Ids::Tokens(_) => (shape.vocab, "the vocabulary"),
            Ids::Targets => (shape.outputs, "the model's logits"),
        }
    }
}

/// Checks rows of ids against a shape: the common length `n`.
pub(crate) fn check_rows(rows: &[Vec<u32>], shape: &TransformerShape, ids: Ids) -> Result<usize> {
    let what = ids.name();
    let Some(first) = rows.first() else {
        return Err(TrainError::Invalid(format!("no {what} rows")));
    };
    let n = first.len();
    if n == 0 || n > shape.context {
        return Err(TrainError::Invalid(format!(
            "{what} rows of {n} positions do not fit the context of {}",
            shape.context
        )));
    }
    let (limit, range) = ids.bound(shape);
    for (r, row) in rows.iter().enumerate() {
        if row.len() != n {
            return Err(TrainError::Invalid(format!(
                "{what} row {r} has {} positions, row 0 has {n}",
                row.len()
            )));
        }
        if let Some(&bad) = row.iter().find(|&&t| t as usize >= limit) {
            return Err(TrainError::Invalid(format!(
                "{what} row {r}: id {bad} is outside {range} ({limit})"
            )));
        }
    }
    Ok(n)
}

/// The rotary tables `cos, sin` of shape `[context, head_dim]`, computed in
/// f64 as the core does and rounded to f32.
fn rotary_tables(shape: &TransformerShape, device: &Device) -> Result<(Tensor, Tensor)> {
    let dh = shape.head_dim;
    let half = dh / 2;
    let mut cos = Vec::with_capacity(shape.context * dh);
    let mut sin = Vec::with_capacity(shape.context * dh);
    for p in 0..shape.context {
        for j in 0..dh {
            let i = j % half;
            let theta = shape.rotary_base.powf(-2.0 * i as f64 / dh as f64);
            let (s, c) = (p as f64 * theta).sin_cos();
            cos.push(c as f32);
            sin.push(s as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (shape.context, dh), device)?,
        Tensor::from_vec(sin, (shape.context, dh), device)?,
    ))
}

/// `M[s,t] / d_head²`, `[context, context]`.
fn mask_table(shape: &TransformerShape, device: &Device) -> Result<Tensor> {
    let c = shape.context;
    let scale = 1.0 / (shape.head_dim as f64 * shape.head_dim as f64);
    let data: Vec<f32> = (0..c * c)
        .map(|k| (shape.mask.weight(k / c, k % c) * scale) as f32)
        .collect();
    Ok(Tensor::from_vec(data, (c, c), device)?)
}

/// Rotary embedding, rotate-half form, on the last two dims `[n, dh]`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}
