//! Analysis of the grokking run: the frequencies read from the weights at
//! every checkpoint, tensor similarity across checkpoints (both written to
//! `matrices/`), its best two-block split and the dominant frequencies.

use anyhow::{Context, Result};
use rayon::prelude::*;
use tensim_core::blocks::{rank_splits, PhaseSplit};
use tensim_core::frequencies::frequency_marginal;
use tensim_core::{BilinearForm, Mat, Model};

use super::{Record, Settings};
use crate::progress;
use crate::recorder::Trajectory;
use crate::run_dir::RunDir;
use crate::similarity_suite as suite;

/// The matrices and what was read from them.
pub(super) struct Analysis {
    /// Tensor similarity (weight space) over the checkpoints.
    pub tensor: Mat<f64>,
    /// Frequency (row) × checkpoint (column) spectrum.
    pub frequencies: Mat<f64>,
    /// The best two-block split of `tensor`.
    pub best: PhaseSplit,
    /// The five strongest frequencies at the last checkpoint.
    pub dominant: Vec<(usize, f64)>,
}

/// Computes and writes the frequency table and the similarity matrix.
pub(super) fn analyse(
    run: &RunDir,
    s: &Settings,
    trajectory: &Trajectory<Model, Record>,
) -> Result<Analysis> {
    let (models, records) = (&trajectory.models, &trajectory.records);
    let (n, p) = (models.len(), s.modulus);
    let bar = progress::bar(n as u64 + (n * (n + 1) / 2) as u64, "analysis");
    let spectra: Vec<Vec<f64>> = models
        .par_iter()
        .map(|m| {
            let spectrum = frequency_marginal(&BilinearForm::fold(m)?, p, s.eigenvectors);
            bar.inc(1);
            spectrum
        })
        .collect::<Result<_, _>>()?;
    let (tensor, _) = suite::tensor(run, models, &bar)?;
    bar.finish_and_clear();
    let labels: Vec<String> = records.iter().map(|r| format!("step {}", r.step)).collect();
    run.write_matrix("tensor", &labels, &tensor.total)?;
    let bins = p / 2 + 1;
    let frequencies = Mat::from_fn(bins, n, |k, i| spectra[i][k]);
    let columns: Vec<String> = (0..bins).map(|k| format!("frequency {k}")).collect();
    for ext in ["csv", "npy"] {
        tensim_io::write_table(
            &run.path(&format!("matrices/frequencies.{ext}")),
            ("checkpoint", &labels),
            &columns,
            &frequencies.transpose().to_owned(),
        )
        .context("writing the frequency table")?;
    }
    let splits = rank_splits(tensor.total.as_ref(), 2);
    let best = *splits.first().with_context(|| {
        format!("only {n} checkpoints: too few to look for a phase change; train for more --steps")
    })?;
    let last = spectra.last().expect("checkpoints");
    let mut dominant: Vec<(usize, f64)> = last.iter().copied().enumerate().collect();
    dominant.sort_by(|a, b| b.1.total_cmp(&a.1));
    dominant.truncate(5);
    Ok(Analysis {
        tensor: tensor.total,
        frequencies,
        best,
        dominant,
    })
}
