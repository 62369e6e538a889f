//! N×N matrices of any pair metric over many models (checkpoints).
//!
//! Per-model work (folding, normalisation, self inner products, own moment
//! chains, activations) is done once per model; only pairs `i ≤ j` are
//! computed, in parallel with rayon (each pair's GEMMs run sequentially so the
//! pool is not oversubscribed), and mirrored.

use faer::{Mat, Par};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::similarity::{canonical_raw_inner, cosine_of, InnerProductSpace};

/// A failure at one pair, naming it.
#[derive(Debug, thiserror::Error)]
#[error("pair ({i}, {j}): {source}")]
pub struct PairError {
    /// The first model of the pair (row), counted from 0.
    pub i: usize,
    /// The second model of the pair (column), counted from 0.
    pub j: usize,
    /// Why the pair failed.
    pub source: Error,
}

/// Evaluates `f` on every pair `i ≤ j` of `items`, in parallel, and returns one
/// symmetric matrix per value `f` returns. `progress` is called once per pair.
pub fn pairwise_values<P, F>(
    items: &[P],
    f: F,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Mat<f64>>, PairError>
where
    P: Sync,
    F: Fn(&P, &P) -> Result<Vec<f64>> + Sync,
{
    let n = items.len();
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i..n).map(move |j| (i, j))).collect();
    let values: Vec<Vec<f64>> = pairs
        .par_iter()
        .map(|&(i, j)| {
            let v = checked_pair(items, &f, i, j)?;
            progress();
            Ok(v)
        })
        .collect::<Result<_, PairError>>()?;
    let k = values.first().map_or(0, Vec::len);
    let mut out = vec![Mat::zeros(n, n); k];
    for (&(i, j), v) in pairs.iter().zip(&values) {
        for (m, &x) in out.iter_mut().zip(v) {
            m[(i, j)] = x;
            m[(j, i)] = x;
        }
    }
    Ok(out)
}

/// `f` of pair `(i, j)`, an error naming the pair when it fails or is not
/// finite.
pub(crate) fn checked_pair<P, F>(
    items: &[P],
    f: &F,
    i: usize,
    j: usize,
) -> Result<Vec<f64>, PairError>
where
    F: Fn(&P, &P) -> Result<Vec<f64>>,
{
    let v = f(&items[i], &items[j]).map_err(|source| PairError { i, j, source })?;
    if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
        return Err(PairError {
            i,
            j,
            source: Error::NotFinite {
                what: "the metric".into(),
                value: *bad,
            },
        });
    }
    Ok(v)
}

/// Raw inner products of every pair of prepared models, one N×N matrix per
/// output: from it come cosine matrices (total and slices) and the similarity
/// of updates, without evaluating any pair twice.
///
/// ```
/// use tensim_core::pairwise::GramMatrices;
/// use tensim_core::{tensor_similarity, Architecture, LayerShape, Residual, TensorPrepared};
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: false, right_bias: false, down_bias: false,
///         residual: Residual::None,
///     }],
/// };
/// let models: Vec<_> = (0..3).map(|s| arch.random_model(s).unwrap()).collect();
/// let prepared: Vec<_> = models
///     .iter()
///     .map(|m| TensorPrepared::<f64>::new(m).unwrap())
///     .collect();
///
/// let gram = GramMatrices::compute(&prepared, &|| {}).unwrap();
/// assert_eq!((gram.models(), gram.outputs()), (3, 2));
/// let total = gram.cosine_total().unwrap();
/// assert!((total[(1, 1)] - 1.0).abs() < 1e-12);
/// assert_eq!(total[(0, 2)], total[(2, 0)]);
/// let pair = tensor_similarity(&models[0], &models[2]).unwrap().total;
/// assert!((total[(0, 2)] - pair).abs() < 1e-12);
///
/// // The update 0 → 1 is similar to itself, and opposite to 1 → 0.
/// let updates = gram.update_similarity(&[(0, 1), (1, 0)], &[0, 1]).unwrap();
/// assert!((updates[(0, 0)] - 1.0).abs() < 1e-10);
/// assert!((updates[(0, 1)] + 1.0).abs() < 1e-10);
/// ```
#[derive(Clone, Debug)]
pub struct GramMatrices {
    /// `raw[c][(i, j)]`: raw inner product of output `c` (see [`InnerProductSpace`]).
    pub raw: Vec<Mat<f64>>,
    /// Per model log-scale: absolute = raw · exp(ls_i + ls_j).
    pub log_scales: Vec<f64>,
}

impl GramMatrices {
    /// Computes all pairs `i ≤ j` in parallel.
    pub fn compute<P: InnerProductSpace>(
        prepared: &[P],
        progress: &(dyn Fn() + Sync),
    ) -> Result<Self, PairError> {
        let raw = pairwise_values(
            prepared,
            |a, b| canonical_raw_inner(a, b, Par::Seq),
            progress,
        )?;
        Ok(GramMatrices {
            raw,
            log_scales: prepared.iter().map(InnerProductSpace::log_scale).collect(),
        })
    }

    /// Number of models `N` (the matrices are `N×N`).
    pub fn models(&self) -> usize {
        self.log_scales.len()
    }

    /// Number of outputs (slices), one raw matrix each.
    pub fn outputs(&self) -> usize {
        self.raw.len()
    }

    fn summed(&self, outputs: &[usize]) -> Mat<f64> {
        let n = self.models();
        Mat::from_fn(n, n, |i, j| {
            outputs.iter().map(|&c| self.raw[c][(i, j)]).sum()
        })
    }

    fn cosine_matrix(g: &Mat<f64>) -> Result<Mat<f64>, PairError> {
        let n = g.nrows();
        let mut out = Mat::zeros(n, n);
        for i in 0..n {
            for j in i..n {
                let v = cosine_of(g[(i, j)], g[(i, i)], g[(j, j)], || {
                    format!("model {i} or {j}")
                })
                .map_err(|source| PairError { i, j, source })?;
                out[(i, j)] = v;
                out[(j, i)] = v;
            }
        }
        Ok(out)
    }

    /// Cosine over all outputs.
    pub fn cosine_total(&self) -> Result<Mat<f64>, PairError> {
        Self::cosine_matrix(&self.summed(&(0..self.outputs()).collect::<Vec<_>>()))
    }

    /// Cosine of one output slice (class or direction `c`).
    pub fn cosine_output(&self, c: usize) -> Result<Mat<f64>, PairError> {
        Self::cosine_matrix(&self.summed(&[c]))
    }

    /// Absolute inner products over the chosen outputs, in units of
    /// `exp(2·ls_ref)` where `ls_ref` is the mean log-scale (avoids overflow).
    fn absolute(&self, outputs: &[usize]) -> Mat<f64> {
        let s = self.summed(outputs);
        let reference = self.log_scales.iter().sum::<f64>() / self.models().max(1) as f64;
        let n = self.models();
        Mat::from_fn(n, n, |i, j| {
            s[(i, j)] * (self.log_scales[i] + self.log_scales[j] - 2.0 * reference).exp()
        })
    }

    /// Similarity of updates (MATH.md §2.6, difference similarity) from the Gram
    /// matrix alone: update `u` goes from model `from[u]` to model `to[u]`;
    /// `⟨Δu, Δv⟩ = G[tu,tv] − G[tu,fv] − G[fu,tv] + G[fu,fv]`.
    /// `outputs` selects the slice (all outputs for the total).
    pub fn update_similarity(
        &self,
        updates: &[(usize, usize)],
        outputs: &[usize],
    ) -> Result<Mat<f64>, PairError> {
        let g = self.absolute(outputs);
        let m = updates.len();
        let inner = Mat::from_fn(m, m, |u, v| {
            let ((fu, tu), (fv, tv)) = (updates[u], updates[v]);
            g[(tu, tv)] - g[(tu, fv)] - g[(fu, tv)] + g[(fu, fv)]
        });
        Self::cosine_matrix(&inner)
    }
}
