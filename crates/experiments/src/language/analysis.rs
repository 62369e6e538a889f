//! Analysis of one language model's checkpoints: the exact Gaussian
//! similarity through attention, output cosines on held-out text, Gaussian
//! sequences and residual-stream activations, and the cosine of all
//! parameters; written to `matrices/` and summarised.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use tensim_core::blocks::rank_splits;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::transformer::Transformer;
use tensim_core::Mat;

use super::inputs::Inputs;
use super::train::Trained;
use super::{MetricSummary, Settings};
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
    ab / (aa.sqrt() * bb.sqrt()).max(1e-300)
}

/// Logits (f64) of many sequences, flattened; `forward` maps one input
/// sequence to its `n × vocab` logits.
fn flat_logits(
    inputs: &[Mat<f64>],
    forward: impl Fn(&Mat<f64>) -> tensim_core::Result<Mat<f64>>,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for x in inputs {
        let y = forward(x)?;
        for i in 0..y.nrows() {
            for j in 0..y.ncols() {
                out.push(y[(i, j)]);
            }
        }
    }
    Ok(out)
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

/// Exact Gaussian similarity through attention, with its exactness.
fn gaussian(t: &Trained, s: &Settings, bar: &ProgressBar) -> Result<(Mat<f64>, String)> {
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
    let gaussian = GramMatrices::compute(&prepared, &|| bar.inc(1))
        .map_err(|e| anyhow!("{e}"))?
        .cosine_total()
        .map_err(|e| anyhow!("{e}"))?;
    Ok((gaussian, exactness))
}

/// Flattened logits of every model on `inputs` through `forward`.
fn all_logits(
    models: &[Transformer],
    inputs: &[Mat<f64>],
    forward: impl Fn(&Transformer, &Mat<f64>) -> tensim_core::Result<Mat<f64>> + Sync,
) -> Result<Vec<Vec<f64>>> {
    models
        .par_iter()
        .map(|m| flat_logits(inputs, |x| forward(m, x)))
        .collect()
}

/// All five matrices, with the Gaussian metric's exactness.
fn matrices(t: &Trained, s: &Settings, inputs: &Inputs) -> Result<(Matrices, String)> {
    let models = &t.trajectory.models;
    let n = models.len();
    let pairs = (n * (n + 1) / 2) as u64;
    let bar = progress::bar(
        n as u64 + 4 * pairs,
        &format!("{}-layer matrices", t.layers),
    );
    let (gaussian, exactness) = gaussian(t, s, &bar)?;
    let text_logits = all_logits(models, &inputs.text, |m, x| m.forward(x.as_ref()))?;
    let gauss_logits = all_logits(models, &inputs.gaussian, |m, x| m.forward(x.as_ref()))?;
    // Residual-stream inputs shared by all checkpoints: the held-out
    // windows through the final checkpoint's embedding. Each checkpoint
    // maps them through its own blocks and unembedding.
    let reference = models.last().expect("at least four checkpoints");
    let residual_inputs: Vec<Mat<f64>> = inputs
        .text
        .iter()
        .map(|x| reference.embed(x.as_ref()))
        .collect();
    let residual_logits = all_logits(models, &residual_inputs, |m, r| {
        m.forward_residual(r.as_ref())
    })?;
    let params: Vec<Vec<f64>> = models
        .iter()
        .map(|t| t.parameters().into_iter().flatten().collect())
        .collect();
    let matrices = Matrices {
        gaussian,
        text: cosines(&text_logits, &bar)?,
        gaussian_output: cosines(&gauss_logits, &bar)?,
        residual: cosines(&residual_logits, &bar)?,
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
    let (matrices, exactness) = matrices(t, s, inputs)?;
    let records = &t.trajectory.records;
    let labels: Vec<String> = records.iter().map(|r| format!("step {}", r.step)).collect();
    let steps: Vec<u64> = records.iter().map(|r| r.step).collect();
    let named = matrices.named();
    for (name, m) in &named {
        run.write_matrix(&format!("{}-layer-{name}", t.layers), &labels, m)?;
    }
    let metrics = named.iter().map(|(k, m)| summarise(k, m, &steps)).collect();
    Ok(Analysis {
        matrices,
        exactness,
        metrics,
    })
}
