//! The numbers of one model on a sequence geometry: per component its leg
//! projections at every position (rotary applied, scaled by the input
//! normaliser), structure tensors and output maps; and the moment helpers
//! (padded moments, means, centring, normalisation) the chain uses.

use faer::{Mat, MatRef, Par};

use crate::contraction::Tensor;
use crate::gemm::product;
use crate::model::{Bilinear, Linear};
use crate::padded::{pad_bilinear, pad_linear};
use crate::residual::Residual;
use crate::transformer::{rotary, Attention, Transformer};

use super::topology::POS;

/// `[projection][position]` projections, `[term][tensor]` structure and
/// `[term]` output maps of one component, before input normalisation.
pub(super) struct RawComponent {
    pub projections: Vec<Vec<Mat<f64>>>,
    pub structure: Vec<Vec<Tensor>>,
    pub output_maps: Vec<Option<Mat<f64>>>,
}

/// Affine map of the stream at every position in padded form `[[1,0],[b,W]]`.
fn padded_affine(weight: MatRef<'_, f64>, bias: Option<&[f64]>) -> Mat<f64> {
    pad_linear(&Linear {
        weight: weight.to_owned(),
        bias: bias.map(<[f64]>::to_vec),
    })
}

/// The residual (degree-1) part of a block in padded form:
/// `[[1, 0], [mix·b, keep·I]]` ([`Residual::coefficients`]).
fn residual_map(d: usize, residual: Residual, bias: Option<&[f64]>) -> Mat<f64> {
    let (keep, s) = residual.coefficients();
    let mut w = Mat::zeros(d + 1, d + 1);
    w[(0, 0)] = 1.0;
    for i in 0..d {
        w[(i + 1, 0)] = s * bias.map_or(0.0, |b| b[i]);
        w[(i + 1, i + 1)] = keep;
    }
    w
}

/// Multiplies the non-constant columns by `c` (the input stream was divided by it).
pub(super) fn scale_inputs(mut p: Mat<f64>, c: f64) -> Mat<f64> {
    for j in 1..p.ncols() {
        for i in 0..p.nrows() {
            p[(i, j)] *= c;
        }
    }
    p
}

/// Rows `(h, e)` of an affine map of the stream (constant row dropped), with
/// the rotary rotation of `position` applied within each head when `rotate`.
fn leg_projection(
    l: &Linear,
    heads: usize,
    dh: usize,
    position: usize,
    base: f64,
    rotate: bool,
) -> Mat<f64> {
    let padded = padded_affine(l.weight.as_ref(), l.bias.as_deref());
    let rows = padded.as_ref().subrows(1, heads * dh);
    if !rotate {
        return rows.to_owned();
    }
    let r = rotary(position, dh, base);
    let mut rotated = Mat::zeros(heads * dh, rows.ncols());
    for h in 0..heads {
        let y = product(r.as_ref(), rows.subrows(h * dh, dh), Par::Seq);
        rotated
            .as_mut()
            .subrows_mut(h * dh, dh)
            .copy_from(y.as_ref());
    }
    rotated
}

/// The numbers of each attention and MLP component of `model`, in the
/// order of the geometry's components.
pub(super) fn component_numbers(model: &Transformer, n: usize) -> Vec<RawComponent> {
    let mut out = Vec::new();
    for b in &model.blocks {
        if let Some(a) = &b.attention {
            out.push(attention_numbers(model, a, n));
        }
        if let Some(m) = &b.mlp {
            out.push(mlp_numbers(model.d_model(), m, n));
        }
    }
    out
}

/// An attention's terms: the residual, and the degree-5 pattern term with
/// its five leg projections per position, the mask scaled by
/// `mix/d_head²`, and the output map `O`.
fn attention_numbers(model: &Transformer, a: &Attention, n: usize) -> RawComponent {
    let d = model.d_model();
    let s = a.residual.mix();
    let (heads, dh) = (a.heads, a.head_dim);
    let mut projections = vec![vec![residual_map(d, a.residual, a.out.bias.as_deref()); n]];
    for (k, l) in a.projections().into_iter().enumerate() {
        projections.push(
            (0..n)
                .map(|p| leg_projection(l, heads, dh, p, model.rotary_base, k < 4))
                .collect(),
        );
    }
    let scale = s / (dh as f64 * dh as f64);
    let mask = Tensor::new(
        vec![POS, 2],
        vec![n, n],
        (0..n * n)
            .map(|k| scale * model.mask.weight(k / n, k % n))
            .collect(),
    )
    .expect("mask shape");
    let o = Mat::from_fn(d + 1, heads * dh, |r, c| {
        if r == 0 {
            0.0
        } else {
            a.out.weight[(r - 1, c)]
        }
    });
    RawComponent {
        projections,
        structure: vec![vec![], vec![mask]],
        output_maps: vec![None, Some(o)],
    }
}

/// A bilinear MLP's terms: the residual, and `mix·D((Lx)⊙(Rx))` with the
/// padded left and right maps (biases included) and the output map `mix·D`.
fn mlp_numbers(d: usize, m: &Bilinear, n: usize) -> RawComponent {
    let s = m.residual.mix();
    let hidden = m.left.nrows();
    let mut no_residual = m.clone();
    no_residual.residual = Residual::None;
    no_residual.down_bias = None;
    let (left, right, _) = pad_bilinear(&no_residual);
    // pad_bilinear appends one constant unit; the bilinear term uses the first `hidden`.
    let left = left.as_ref().subrows(0, hidden).to_owned();
    let right = right.as_ref().subrows(0, hidden).to_owned();
    let down = Mat::from_fn(d + 1, hidden, |r, k| {
        if r == 0 {
            0.0
        } else {
            s * m.down[(r - 1, k)]
        }
    });
    RawComponent {
        projections: vec![
            vec![residual_map(d, m.residual, m.down_bias.as_deref()); n],
            vec![left; n],
            vec![right; n],
        ],
        structure: vec![vec![], vec![]],
        output_maps: vec![None, Some(down)],
    }
}

/// The moment of the embedded stream, `S_ab[(p,i),(q,j)]`: the constant 1
/// everywhere, `E_a E_bᵀ` on the blocks of equal positions (the positions
/// are independent `N(0, I)`), zero elsewhere; divided by `ca` and `cb` on
/// the non-constant coordinates.
pub(super) fn embedded_moment(
    ea: MatRef<'_, f64>,
    eb: MatRef<'_, f64>,
    n: usize,
    (ca, cb): (f64, f64),
) -> Mat<f64> {
    let d = ea.nrows();
    let w = d + 1;
    let gram = product(ea, eb.transpose(), Par::Seq);
    let mut s = Mat::zeros(n * w, n * w);
    for p in 0..n {
        for q in 0..n {
            s[(p * w, q * w)] = 1.0;
        }
        for i in 0..d {
            for j in 0..d {
                s[(p * w + 1 + i, p * w + 1 + j)] = gram[(i, j)] / (ca * cb);
            }
        }
    }
    s
}

/// Per-token inner products `Σ_p (U_a S_pp U_bᵀ)[c,c]` of the logits, from
/// the final stream moment (positions summed first: `U` does not depend on
/// the position).
pub(super) fn token_inner(
    s: MatRef<'_, f64>,
    ua: MatRef<'_, f64>,
    ub: MatRef<'_, f64>,
    n: usize,
) -> Vec<f64> {
    let d = ua.ncols();
    let w = d + 1;
    let mut summed = Mat::<f64>::zeros(d, d);
    for p in 0..n {
        summed += s.submatrix(p * w + 1, p * w + 1, d, d);
    }
    let left = product(ua, summed.as_ref(), Par::Seq);
    (0..ua.nrows())
        .map(|c| (0..d).map(|j| left[(c, j)] * ub[(c, j)]).sum())
        .collect()
}

/// `E[x̂_p]` for every position, from the self moment (column `(p, 0)`).
pub(super) fn means(s: MatRef<'_, f64>, n: usize, w: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|p| (0..w).map(|i| s[(p * w + i, p * w)]).collect())
        .collect()
}

/// `S − μ_a μ_bᵀ` blockwise over positions.
pub(super) fn centred(s: MatRef<'_, f64>, mu_a: &[Vec<f64>], mu_b: &[Vec<f64>]) -> Mat<f64> {
    let (wa, wb) = (mu_a[0].len(), mu_b[0].len());
    Mat::from_fn(s.nrows(), s.ncols(), |r, c| {
        s[(r, c)] - mu_a[r / wa][r % wa] * mu_b[c / wb][c % wb]
    })
}

/// Divides coordinate `i ≥ 1` of each side by its normaliser (rows by `ca`, columns by `cb`).
pub(super) fn normalise(mut s: Mat<f64>, w: usize, ca: f64, cb: f64) -> Mat<f64> {
    for c in 0..s.ncols() {
        let fc = if c % w == 0 { 1.0 } else { cb };
        for r in 0..s.nrows() {
            let fr = if r % w == 0 { 1.0 } else { ca };
            s[(r, c)] /= fr * fc;
        }
    }
    s
}

/// `sqrt` of the largest entry of `values` (1 when it is zero or not finite).
pub(super) fn norm_of(values: impl Iterator<Item = f64>) -> f64 {
    let best = values.map(f64::abs).fold(0.0f64, f64::max);
    if best > 0.0 && best.is_finite() {
        best.sqrt()
    } else {
        1.0
    }
}

/// `sqrt` of the largest non-constant diagonal entry (1 when it is zero).
pub(super) fn stream_norm(s: MatRef<'_, f64>, w: usize) -> f64 {
    norm_of((0..s.nrows()).filter(|r| r % w != 0).map(|r| s[(r, r)]))
}
