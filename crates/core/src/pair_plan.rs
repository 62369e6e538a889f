//! A matrix job as pairs: which pairs `i ≤ j` to compute, what is already
//! known, and who hears of each new result. This is what resuming a killed
//! matrix and splitting one into shards are made of: a job computes the
//! pairs of its plan ([`crate::metric::MatrixJob::pair_values`]), each
//! pair's values are exactly the numbers the full run would compute, and
//! [`assemble`] turns a complete set into the matrix, bit for bit the one a
//! single uninterrupted run gives.
//!
//! Inner-product metrics (`tensor`, `gaussian` and their slices) keep one
//! raw inner product per output for every pair, the diagonal included, and
//! assemble the cosine from them (MATH.md §2.3); the other metrics keep
//! their one value per pair.

use std::collections::{BTreeMap, HashSet};

use faer::Mat;

use crate::error::Error;
use crate::metric::{Metric, MetricError};
use crate::pairwise::{checked_pair, GramMatrices, PairError};
use crate::similarity::{canonical_raw_inner, InnerProductSpace};
use rayon::prelude::*;

/// Called with every newly computed pair `(i, j, values)`, from worker
/// threads; an error stops the job.
pub type OnPair<'a> = &'a (dyn Fn(usize, usize, &[f64]) -> Result<(), String> + Sync);

/// Which pairs a job computes and what it already knows.
#[derive(Default)]
pub struct PairPlan<'a> {
    known: PairValues,
    only: Option<HashSet<(usize, usize)>>,
    on_pair: Option<OnPair<'a>>,
}

impl<'a> PairPlan<'a> {
    /// Every pair, nothing known.
    pub fn all() -> Self {
        Self::default()
    }

    /// Values already computed (a resumed run): used as they are.
    pub fn known(mut self, values: PairValues) -> Self {
        self.known = values;
        self
    }

    /// Computes only these pairs (a shard).
    pub fn only(mut self, pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        self.only = Some(pairs.into_iter().collect());
        self
    }

    /// Hears of every pair computed (not of those known).
    pub fn on_pair(mut self, f: OnPair<'a>) -> Self {
        self.on_pair = Some(f);
        self
    }

    /// The pairs of `n` models this plan covers, in row-major order.
    pub fn selected(&self, n: usize) -> Vec<(usize, usize)> {
        all_pairs(n)
            .into_iter()
            .filter(|p| self.only.as_ref().is_none_or(|o| o.contains(p)))
            .collect()
    }

    /// How many pairs are known already.
    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    /// The known values of `pair`, if any.
    pub fn known_value(&self, pair: (usize, usize)) -> Option<&[f64]> {
        self.known.get(pair)
    }

    /// Passes a new pair to the listener.
    pub fn record(&self, i: usize, j: usize, values: &[f64]) -> Result<(), PairError> {
        match self.on_pair {
            Some(f) => f(i, j, values).map_err(|reason| PairError {
                i,
                j,
                source: Error::Record { reason },
            }),
            None => Ok(()),
        }
    }
}

/// Evaluates `f` on the pairs of `plan` over `items` in parallel, known
/// pairs taken as they are; every new pair is recorded with the plan's
/// listener and `progress` hears of every pair, known or new.
pub fn planned_values<P, F>(
    items: &[P],
    f: F,
    plan: &PairPlan<'_>,
    progress: &(dyn Fn() + Sync),
) -> Result<PairValues, PairError>
where
    P: Sync,
    F: Fn(&P, &P) -> crate::error::Result<Vec<f64>> + Sync,
{
    let values: Vec<((usize, usize), Vec<f64>)> = plan
        .selected(items.len())
        .into_par_iter()
        .map(|(i, j)| {
            let v = match plan.known_value((i, j)) {
                Some(v) => v.to_vec(),
                None => {
                    let v = checked_pair(items, &f, i, j)?;
                    plan.record(i, j, &v)?;
                    v
                }
            };
            progress();
            Ok(((i, j), v))
        })
        .collect::<Result<_, PairError>>()?;
    Ok(PairValues {
        values: values.into_iter().collect(),
    })
}

/// Every pair `i ≤ j` of `n` models, row by row.
pub fn all_pairs(n: usize) -> Vec<(usize, usize)> {
    (0..n).flat_map(|i| (i..n).map(move |j| (i, j))).collect()
}

/// The pairs of shard `k` of `shards` (counted from 0): every `shards`-th
/// pair of [`all_pairs`] from the `k`-th on, so that every shard holds the
/// same number of pairs to within one and mixes cheap and dear rows alike.
pub fn shard_pairs(n: usize, k: usize, shards: usize) -> Vec<(usize, usize)> {
    all_pairs(n)
        .into_iter()
        .enumerate()
        .filter(|(p, _)| shards > 0 && p % shards == k)
        .map(|(_, pair)| pair)
        .collect()
}

/// The values of some pairs `i ≤ j` of `n` models.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PairValues {
    values: BTreeMap<(usize, usize), Vec<f64>>,
}

impl PairValues {
    /// No pairs.
    pub fn new() -> Self {
        Self::default()
    }

    /// The values of `pair`, if present.
    pub fn get(&self, pair: (usize, usize)) -> Option<&[f64]> {
        self.values.get(&pair).map(Vec::as_slice)
    }

    /// Adds a pair; an error if it is there already.
    pub fn insert(&mut self, pair: (usize, usize), values: Vec<f64>) -> Result<(), Error> {
        if self.values.contains_key(&pair) {
            return Err(Error::PairTwice {
                i: pair.0,
                j: pair.1,
            });
        }
        self.values.insert(pair, values);
        Ok(())
    }

    /// Pairs held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The pairs and their values, row by row.
    pub fn iter(&self) -> impl Iterator<Item = ((usize, usize), &[f64])> {
        self.values.iter().map(|(&p, v)| (p, v.as_slice()))
    }

    /// The first pair of `n` models that is missing, if any.
    pub fn first_missing(&self, n: usize) -> Option<(usize, usize)> {
        all_pairs(n)
            .into_iter()
            .find(|p| !self.values.contains_key(p))
    }

    /// One symmetric `n × n` matrix per value; every pair must be present
    /// with the same number of values.
    pub(crate) fn matrices(&self, n: usize) -> Result<Vec<Mat<f64>>, Error> {
        if let Some((i, j)) = self.first_missing(n) {
            return Err(Error::PairMissing { i, j });
        }
        let k = self.values.values().next().map_or(0, Vec::len);
        let mut out = vec![Mat::zeros(n, n); k];
        for (&(i, j), v) in &self.values {
            if i >= n || j >= n || v.len() != k {
                return Err(Error::PairMismatch { i, j });
            }
            for (m, &x) in out.iter_mut().zip(v) {
                m[(i, j)] = x;
                m[(j, i)] = x;
            }
        }
        Ok(out)
    }
}

/// Raw inner products per output of the planned pairs of prepared models
/// (each pair's GEMMs run sequentially: the pairs run in parallel), and
/// each model's log-scale.
pub(crate) fn scaled_values<P: InnerProductSpace + Sync>(
    prepared: &[P],
    plan: &PairPlan<'_>,
    tick: &(dyn Fn() + Sync),
) -> Result<(PairValues, Vec<f64>), PairError> {
    let raw = |a: &P, b: &P| canonical_raw_inner(a, b, faer::Par::Seq);
    let values = planned_values(prepared, raw, plan, tick)?;
    Ok((
        values,
        prepared.iter().map(InnerProductSpace::log_scale).collect(),
    ))
}

impl GramMatrices {
    /// [`GramMatrices::compute`] through a plan that covers every pair:
    /// known pairs are taken as they are and new ones recorded, so a killed
    /// computation continues where it stopped and gives the same matrices
    /// bit for bit. `progress` hears of every pair, known or new.
    pub fn planned<P: InnerProductSpace + Sync>(
        prepared: &[P],
        plan: &PairPlan<'_>,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Self, MetricError> {
        let (values, log_scales) = scaled_values(prepared, plan, progress)?;
        Ok(GramMatrices {
            raw: values.matrices(prepared.len())?,
            log_scales,
        })
    }
}

/// The `n × n` matrix of `metric` from the values of all its pairs: the
/// cosine of the raw inner products for the inner-product metrics (the
/// slice's for a slice metric), the values themselves otherwise.
pub fn assemble(metric: Metric, n: usize, values: &PairValues) -> Result<Mat<f64>, MetricError> {
    let mut matrices = values.matrices(n)?;
    if !metric.is_inner_product() {
        return Ok(matrices.pop().ok_or(Error::NoModels)?);
    }
    let gram = GramMatrices {
        raw: matrices,
        log_scales: vec![0.0; n],
    };
    Ok(match metric.slice() {
        Some(c) => gram.cosine_output(c)?,
        None => gram.cosine_total()?,
    })
}
