//! Bridges and means: the second and first moments of legs that the Wick
//! sum pairs or leaves unmatched (module docs of [`super`]).
//!
//! A bridge between leg `i` (projections `P_i[p]`) and leg `j` is the
//! covariance `Cov(ℓ_i[p], ℓ_j[q]) = P_i[p] C[p,q] P_j[q]ᵀ` over position
//! pairs. Where the network ties the two positions (a position-diagonal
//! input covariance, or two output positions of a diagonal-output
//! component) only the blocks `p = q` exist and the tensor carries one
//! position label.

use faer::{Mat, MatRef, Par};

use crate::contraction::{flat, tensor_with_diagonals, Label, Tensor};
use crate::gemm::product;

use super::topology::Leg;

/// A leg with its projections and the dimension of each coordinate label.
pub(super) struct LegNumbers<'a> {
    pub leg: &'a Leg,
    pub projections: &'a [Mat<f64>],
    pub coord_dims: Vec<usize>,
}

/// Blocks `P_i[p] C[p,q] P_j[q]ᵀ` (`C[q,p]ᵀ` when `transpose`) for every
/// position pair, or only `p = q` when `tied`.
fn blocks(
    pi: &[Mat<f64>],
    pj: &[Mat<f64>],
    c: MatRef<'_, f64>,
    transpose: bool,
    tied: bool,
) -> Vec<Option<Mat<f64>>> {
    let n = pi.len();
    let w = pi[0].ncols();
    let mut out = Vec::with_capacity(n * n);
    for p in 0..n {
        for q in 0..n {
            if tied && p != q {
                out.push(None);
                continue;
            }
            let cb = if transpose {
                c.submatrix(q * w, p * w, w, w).transpose()
            } else {
                c.submatrix(p * w, q * w, w, w)
            };
            let left = product(pi[p].as_ref(), cb, Par::Seq);
            out.push(Some(product(
                left.as_ref(),
                pj[q].as_ref().transpose(),
                Par::Seq,
            )));
        }
    }
    out
}

/// The bridge `Cov(ℓ_i, ℓ_j)` as a tensor over `labels`: both legs' labels
/// with repeats removed (a shared head takes the diagonal) and, when
/// `tied`, the second position dropped.
pub(super) fn bridge(
    i: &LegNumbers<'_>,
    j: &LegNumbers<'_>,
    c: MatRef<'_, f64>,
    transpose: bool,
    tied: bool,
) -> Tensor {
    let n = i.projections.len();
    let tied = tied || i.leg.position == j.leg.position;
    let blocks = blocks(i.projections, j.projections, c, transpose, tied);
    // The second position takes the first's label when tied.
    let q_label = if tied { i.leg.position } else { j.leg.position };
    let labels: Vec<Label> = i
        .leg
        .labels()
        .chain(std::iter::once(q_label))
        .chain(j.leg.coords.iter().copied())
        .collect();
    let dims: Vec<usize> = [vec![n], i.coord_dims.clone(), vec![n], j.coord_dims.clone()].concat();
    let (ni, nj) = (i.coord_dims.len(), j.coord_dims.len());
    tensor_with_diagonals(&labels, &dims, |ix| {
        let (p, q) = (ix[0], ix[1 + ni]);
        let r = flat(&ix[1..1 + ni], &i.coord_dims);
        let s = flat(&ix[2 + ni..2 + ni + nj], &j.coord_dims);
        blocks[p * n + q].as_ref().expect("a block on the diagonal")[(r, s)]
    })
}

/// `E[ℓ] = P[p] μ_p` at every position; `None` when it is zero everywhere.
pub(super) fn mean_tensor(l: &LegNumbers<'_>, mu: &[Vec<f64>]) -> Option<Tensor> {
    let vectors: Vec<Vec<f64>> = l
        .projections
        .iter()
        .zip(mu)
        .map(|(m, mu)| {
            (0..m.nrows())
                .map(|r| (0..m.ncols()).map(|c| m[(r, c)] * mu[c]).sum())
                .collect()
        })
        .collect();
    if vectors.iter().flatten().all(|&x| x == 0.0) {
        return None;
    }
    let labels: Vec<Label> = l.leg.labels().collect();
    let dims: Vec<usize> = [vec![l.projections.len()], l.coord_dims.clone()].concat();
    Some(tensor_with_diagonals(&labels, &dims, |ix| {
        vectors[ix[0]][flat(&ix[1..], &l.coord_dims)]
    }))
}
