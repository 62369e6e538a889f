//! Analysis of one language model's checkpoints: the exact Gaussian
//! similarity through attention, output cosines on held-out text, Gaussian
//! sequences and residual-stream activations, and the cosine of all
//! parameters; written to `matrices/` and summarised.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;
use tensim_core::blocks::rank_splits;
use tensim_core::monte_carlo::gaussian_inputs;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::transformer::Transformer;
use tensim_core::Mat;

use super::inputs::Inputs;
use super::train::Trained;
use super::{MetricSummary, Settings};
use crate::pair_progress;
use crate::progress;
use crate::run_dir::RunDir;

/// The five matrices over checkpoints, in the order of the report.
pub(super) struct Matrices {
    pub gaussian: Mat<f64>,
    pub text: Mat<f64>,
    pub gaussian_output: Mat<f64>,
    pub residual: Mat<f64>,
    pub weights: Mat<f64>,
}

impl Matrices {
    /// (file key, matrix) pairs.
    pub fn named(&self) -> [(&'static str, &Mat<f64>); 5] {
        [
            ("gaussian", &self.gaussian),
            ("output-cosine-text", &self.text),
            ("output-cosine-gaussian", &self.gaussian_output),
            ("output-cosine-residual", &self.residual),
            ("matrix-cosine", &self.weights),
        ]
    }
}

/// The matrices and their summaries.
pub(super) struct Analysis {
    pub matrices: Matrices,
    /// How exact the Gaussian metric is for this architecture.
    pub exactness: String,
    pub metrics: Vec<MetricSummary>,
    /// `gaussian` against a Monte-Carlo estimate of the same quantity at a
    /// few pairs of checkpoints.
    pub checks: Vec<MonteCarloCheck>,
}

/// One entry of the `gaussian` matrix beside a Monte-Carlo estimate of the
/// same cosine: logits of both checkpoints on the same sequences of
/// `positions` independent `N(0, I_vocab)` inputs, uncentred, all positions
/// and logits flattened (`tensim_core::monte_carlo::sequence_monte_carlo`,
/// MATH.md §4.4). Through a Gaussian closure the difference is the
/// closure's error; where the metric is exact it is sampling noise.
#[derive(Clone, Debug, Serialize)]
pub struct MonteCarloCheck {
    pub step_a: u64,
    pub step_b: u64,
    /// The `gaussian` matrix entry (exact moments or Gaussian closure).
    pub moments: f64,
    pub monte_carlo: f64,
    /// Delta-method standard error of `monte_carlo`.
    pub std_error: f64,
    pub samples: usize,
    /// The largest share one sequence has of either model's summed squared
    /// logits: near 1 means a single draw dominates the estimate (heavy
    /// tails), whatever its standard error says.
    pub largest_share: f64,
}

impl MonteCarloCheck {
    /// `(moments − monte_carlo) / std_error`.
    pub fn z(&self) -> f64 {
        (self.moments - self.monte_carlo) / self.std_error
    }
}

/// The checked pairs of `n` checkpoints: first vs last, a quarter vs the
/// middle, the middle vs last and the last two.
fn check_pairs(n: usize) -> Vec<(usize, usize)> {
    let mut pairs = vec![(0, n - 1), (n / 4, n / 2), (n / 2, n - 1), (n - 2, n - 1)];
    pairs.retain(|(i, j)| i < j);
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Sequences per Monte-Carlo chunk (each chunk has its own seeded generator).
const MC_CHUNK: usize = 256;

/// Monte-Carlo estimate of the uncentred cosine of two transformers' logits
/// on `samples` sequences of `positions` independent `N(0, I_vocab)` tokens
/// (all positions and logits flattened), with its delta-method standard
/// error (MATH.md §4.4) and the largest single-sequence share (all NaN
/// but the share, 1, when some sequence's logits overflow f64), from
/// core's scale-safe [`tensim_core::monte_carlo::cosine_estimate`].
pub fn monte_carlo_cosine(
    a: &Transformer,
    b: &Transformer,
    positions: usize,
    samples: usize,
    seed: u64,
) -> Result<(f64, f64, f64)> {
    let chunks = samples.div_ceil(MC_CHUNK);
    let per_chunk: Vec<Vec<[f64; 3]>> = (0..chunks)
        .into_par_iter()
        .map(|k| -> Result<Vec<[f64; 3]>> {
            let mut rng =
                StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k as u64);
            let rows = MC_CHUNK.min(samples - k * MC_CHUNK);
            let x = gaussian_inputs(rows * positions, a.vocab(), &mut rng);
            let ya = a.forward_stacked(x.as_ref(), positions)?;
            let yb = b.forward_stacked(x.as_ref(), positions)?;
            Ok((0..rows)
                .map(|r| {
                    let mut v = [0.0; 3];
                    for i in r * positions..(r + 1) * positions {
                        for j in 0..ya.ncols() {
                            let (fa, fb) = (ya[(i, j)], yb[(i, j)]);
                            v[0] += fa * fb;
                            v[1] += fa * fa;
                            v[2] += fb * fb;
                        }
                    }
                    v
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    let v: Vec<[f64; 3]> = per_chunk.into_iter().flatten().collect();
    if v.iter().flatten().any(|x| !x.is_finite()) {
        // Some sequence's logits overflow f64: the tail is beyond sampling.
        return Ok((f64::NAN, f64::NAN, 1.0));
    }
    let e = tensim_core::monte_carlo::cosine_estimate(&v)?;
    Ok((e.value, e.std_error, e.largest_share))
}

/// [`MonteCarloCheck`]s of `gaussian` at [`check_pairs`], each on
/// `s.monte_carlo_samples` sequences.
fn monte_carlo_checks(
    t: &Trained,
    s: &Settings,
    gaussian: &Mat<f64>,
) -> Result<Vec<MonteCarloCheck>> {
    let models = &t.trajectory.models;
    let steps: Vec<u64> = t.trajectory.records.iter().map(|r| r.step).collect();
    let pairs = check_pairs(models.len());
    let bar = progress::bar(
        pairs.len() as u64,
        &format!("{}-layer Monte-Carlo", t.layers),
    );
    let mut checks = Vec::new();
    for (k, &(i, j)) in pairs.iter().enumerate() {
        let seed = s.seed ^ (0x3c0f_f1ce_u64 << 16).wrapping_add(1_000_003 * k as u64);
        let (value, std_error, largest_share) = monte_carlo_cosine(
            &models[i],
            &models[j],
            s.gaussian_positions,
            s.monte_carlo_samples,
            seed,
        )?;
        checks.push(MonteCarloCheck {
            step_a: steps[i],
            step_b: steps[j],
            moments: gaussian[(i, j)],
            monte_carlo: value,
            std_error,
            samples: s.monte_carlo_samples,
            largest_share,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(checks)
}

fn summarise(name: &str, m: &Mat<f64>, steps: &[u64]) -> MetricSummary {
    let n = m.nrows();
    let mut off = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                off.push(m[(i, j)]);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let consecutive: Vec<f64> = (1..n).map(|i| m[(i - 1, i)]).collect();
    let best = rank_splits(m.as_ref(), 2).into_iter().next();
    MetricSummary {
        metric: name.to_string(),
        mean_off_diagonal: mean(&off),
        first_vs_last: m[(0, n - 1)],
        mean_consecutive: mean(&consecutive),
        best_split_step: best.map(|b| steps[b.index]),
        best_split_contrast: best.map(|b| b.contrast),
    }
}

/// One cosine of two flattened output arrays (EXPERIMENTS §4: all samples ×
/// positions × classes flattened).
fn flat_cosine(a: &[f64], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    flat_cosine_of(ab, aa, bb)
}

/// The cosine of inner product `ab` and squared norms `aa`, `bb`.
fn flat_cosine_of(ab: f64, aa: f64, bb: f64) -> f64 {
    ab / (aa.sqrt() * bb.sqrt()).max(1e-300)
}

/// The pairwise [`flat_cosine`] of vectors.
fn cosines(v: &[Vec<f64>], bar: &ProgressBar) -> Result<Mat<f64>> {
    let index: Vec<usize> = (0..v.len()).collect();
    let m = pairwise_values(
        &index,
        |&i, &j| Ok(vec![flat_cosine(&v[i], &v[j])]),
        &|| bar.inc(1),
    )
    .map_err(|e| anyhow!("{e}"))?;
    Ok(m.into_iter().next().expect("one matrix"))
}

/// Exact Gaussian similarity through attention, with its exactness; its
/// pairs resume from the run's `progress/L-layer-gaussian.pairs`.
fn gaussian(
    run: &RunDir,
    t: &Trained,
    s: &Settings,
    bar: &ProgressBar,
) -> Result<(Mat<f64>, String)> {
    let geometry = Arc::new(SequenceGeometry::new(&t.shape, s.gaussian_positions)?);
    let prepared: Vec<SequencePrepared> = t
        .trajectory
        .models
        .par_iter()
        .map(|m| {
            let p = SequencePrepared::new(m, geometry.clone());
            bar.inc(1);
            p
        })
        .collect::<Result<_, _>>()?;
    let exactness = prepared[0].exactness().describe();
    let name = format!("{}-layer-gaussian", t.layers);
    let parameters = t.trajectory.models.iter().map(Transformer::parameters);
    let gram = pair_progress::resumable(run, &name, "gaussian", parameters, |plan| {
        GramMatrices::planned(&prepared, plan, &|| bar.inc(1)).map_err(|e| anyhow!("{e}"))
    })?;
    let gaussian = gram.cosine_total().map_err(|e| anyhow!("{e}"))?;
    Ok((gaussian, exactness))
}

/// The output cosine of every pair of models on `inputs` through `forward`,
/// all samples × positions × logits flattened into one vector per model
/// (EXPERIMENTS §4). The inner products are summed one sample at a time
/// (`Yᵀ Y` over that sample's logits, models as columns), so the logits of
/// all checkpoints are never held at once; each entry is read from the upper
/// triangle, so the matrix is exactly symmetric.
fn output_cosines(
    models: &[Transformer],
    inputs: &[Mat<f64>],
    forward: impl Fn(&Transformer, &Mat<f64>) -> tensim_core::Result<Mat<f64>> + Sync,
) -> Result<Mat<f64>> {
    let n = models.len();
    let mut gram = Mat::<f64>::zeros(n, n);
    for x in inputs {
        let logits: Vec<Mat<f64>> = models
            .par_iter()
            .map(|m| forward(m, x))
            .collect::<tensim_core::Result<_>>()?;
        let (rows, cols) = (logits[0].nrows(), logits[0].ncols());
        let mut y = Mat::<f64>::zeros(rows * cols, n);
        for (k, l) in logits.iter().enumerate() {
            let column = y.col_as_slice_mut(k);
            for j in 0..cols {
                column[j * rows..(j + 1) * rows].copy_from_slice(l.col_as_slice(j));
            }
        }
        gram += y.transpose() * &y;
    }
    Ok(Mat::from_fn(n, n, |i, j| {
        let (a, b) = (i.min(j), i.max(j));
        if a == b {
            1.0
        } else {
            flat_cosine_of(gram[(a, b)], gram[(a, a)], gram[(b, b)])
        }
    }))
}

/// All five matrices, with the Gaussian metric's exactness.
fn matrices(
    run: &RunDir,
    t: &Trained,
    s: &Settings,
    inputs: &Inputs,
) -> Result<(Matrices, String)> {
    let models = &t.trajectory.models;
    let n = models.len();
    let pairs = (n * (n + 1) / 2) as u64;
    let bar = progress::bar(
        n as u64 + 4 * pairs,
        &format!("{}-layer matrices", t.layers),
    );
    let (gaussian, exactness) = gaussian(run, t, s, &bar)?;
    let text = output_cosines(models, &inputs.text, |m, x| m.forward(x.as_ref()))?;
    bar.inc(pairs);
    let gaussian_output = output_cosines(models, &inputs.gaussian, |m, x| m.forward(x.as_ref()))?;
    bar.inc(pairs);
    // Residual-stream inputs shared by all checkpoints: the held-out
    // windows through the final checkpoint's embedding. Each checkpoint
    // maps them through its own blocks and unembedding.
    let reference = models.last().expect("at least four checkpoints");
    let residual_inputs: Vec<Mat<f64>> = inputs
        .text
        .iter()
        .map(|x| reference.embed(x.as_ref()))
        .collect();
    let residual = output_cosines(models, &residual_inputs, |m, r| {
        m.forward_residual(r.as_ref())
    })?;
    bar.inc(pairs);
    let params: Vec<Vec<f64>> = models
        .iter()
        .map(|t| t.parameters().into_iter().flatten().collect())
        .collect();
    let matrices = Matrices {
        gaussian,
        text,
        gaussian_output,
        residual,
        weights: cosines(&params, &bar)?,
    };
    bar.finish_and_clear();
    Ok((matrices, exactness))
}

/// Computes, writes and summarises the matrices of one model.
pub(super) fn analyse(
    run: &RunDir,
    s: &Settings,
    inputs: &Inputs,
    t: &Trained,
) -> Result<Analysis> {
    let (matrices, exactness) = matrices(run, t, s, inputs)?;
    let records = &t.trajectory.records;
    let labels: Vec<String> = records.iter().map(|r| format!("step {}", r.step)).collect();
    let steps: Vec<u64> = records.iter().map(|r| r.step).collect();
    let named = matrices.named();
    for (name, m) in &named {
        run.write_matrix(&format!("{}-layer-{name}", t.layers), &labels, m)?;
    }
    let metrics = named.iter().map(|(k, m)| summarise(k, m, &steps)).collect();
    let checks = monte_carlo_checks(t, s, &matrices.gaussian)?;
    Ok(Analysis {
        matrices,
        exactness,
        metrics,
        checks,
    })
}
