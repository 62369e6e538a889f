//! Bilinear attention (MATH.md §1.5–1.7): per head of width `d_head`,
//! positions `s` (query) and `t` (key),
//!
//! ```text
//! z_s = O Σ_t M[s,t] · (q1_s·k1_t)(q2_s·k2_t) / d_head² · v_t
//! ```
//!
//! with rotary embedding on the four q/k projections and a causal or full mask.

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::model::{affine_rows, Linear};
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

    /// `causal` or `full`, as checkpoints and options name the mask.
    pub fn name(self) -> &'static str {
        match self {
            Mask::Causal => "causal",
            Mask::Full => "full",
        }
    }

    /// The mask called `name` (`causal` or `full`); any other name is
    /// [`Error::UnknownMask`].
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "causal" => Ok(Mask::Causal),
            "full" => Ok(Mask::Full),
            other => Err(Error::UnknownMask {
                name: other.to_string(),
            }),
        }
    }
}

/// Bilinear attention joined to the stream by its residual:
/// `y = keep·x + mix·(O z + b_O)` ([`Residual::coefficients`]).
///
/// Shapes are checked when the attention joins a [`Transformer`](super::Transformer).
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

impl Attention {
    /// An attention of `heads` heads of width `head_dim`: `projections` in
    /// leg order `q1, k1, q2, k2, v` (`[heads·head_dim, d_model]` each),
    /// `out` (`[d_model, heads·head_dim]`). Shapes and values are checked by
    /// [`Transformer::new`](super::Transformer::new).
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

    pub(crate) fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Attention output (before residual mixing, with `b_O`) for sequences
    /// of `n` positions stacked in `x` (`sequences·n × d_model`, sequence
    /// `k` in rows `k·n..(k+1)·n`): projections, rotary and the output map
    /// run over all rows at once, the pattern within each sequence.
    pub(crate) fn mix(&self, x: MatRef<'_, f64>, n: usize, mask: Mask, base: f64) -> Mat<f64> {
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
