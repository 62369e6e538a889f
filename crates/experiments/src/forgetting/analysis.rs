//! Analysis of the forgetting run: Gaussian similarity (total and class
//! slices), CKA and matrix cosine over the checkpoints, the mean similarity
//! between stages, the class that changes at "remove 9", and each stage's
//! update compared with the "add 9" update.

use std::time::Instant;

use anyhow::Result;
use tensim_core::blocks::block_mean;
use tensim_core::pairwise::GramMatrices;
use tensim_core::Mat;
use tensim_data::Split;

use super::train::Trained;
use super::Settings;
use crate::progress;
use crate::run_dir::RunDir;
use crate::similarity_suite::{self as suite, SlicedMatrices};

/// The matrices and what was read from them.
pub(super) struct Analysis {
    pub gaussian: SlicedMatrices,
    pub cka: Mat<f64>,
    pub weights: Mat<f64>,
    /// Mean `gaussian` similarity between the checkpoints of two stages.
    pub stage_similarity: Vec<Vec<f64>>,
    pub remove9_class_change: Vec<(usize, f64)>,
    /// Similarity of every pair of stage updates.
    pub update_matrix: Mat<f64>,
    pub update_similarity_to_add9: Vec<(String, f64)>,
    pub seconds: f64,
}

/// Gaussian similarity with its Gram matrices, matrix cosine and CKA of
/// logits on the first `cka_images` test images.
fn matrices(
    run: &RunDir,
    t: &Trained,
    data: &Split,
    s: &Settings,
) -> Result<(SlicedMatrices, GramMatrices, Mat<f64>, Mat<f64>)> {
    let models = &t.trajectory.models;
    let n = models.len();
    let pairs = (n * (n + 1) / 2) as u64;
    let bar = progress::bar(pairs * 3, "matrices");
    let (gaussian, gram) = suite::gaussian(run, models, &bar)?;
    let weights = suite::matrix_cosine(models, &bar)?;
    let cka_set = data.test.first(s.cka_images);
    let dim = cka_set.dim();
    let cka_x = Mat::from_fn(cka_set.len(), dim, |i, j| {
        f64::from(cka_set.images[i * dim + j])
    });
    let cka = suite::cka(&suite::outputs(models, &cka_x)?, &bar)?;
    bar.finish_and_clear();
    Ok((gaussian, gram, weights, cka))
}

/// 1 − mean similarity of each class slice between the "control" and
/// "remove 9" checkpoints, largest first.
fn class_change(t: &Trained, gaussian: &SlicedMatrices) -> Vec<(usize, f64)> {
    let stage = |name: &str| t.stages.iter().position(|st| st.name == name);
    let control = stage("control").expect("known stage");
    let remove9 = stage("remove 9").expect("known stage");
    let mut change: Vec<(usize, f64)> = gaussian
        .slices
        .iter()
        .enumerate()
        .map(|(c, m)| {
            let same = block_mean(m.as_ref(), t.stage_range(control), t.stage_range(remove9));
            (c, 1.0 - same)
        })
        .collect();
    change.sort_by(|a, b| b.1.total_cmp(&a.1));
    change
}

/// Similarity of every pair of stage updates (the checkpoint before a stage
/// to its last checkpoint).
fn update_matrix(t: &Trained, gram: &GramMatrices) -> Result<Mat<f64>> {
    let updates: Vec<(usize, usize)> = (0..t.stages.len())
        .map(|k| {
            let r = t.stage_range(k);
            (if k == 0 { r.start } else { r.start - 1 }, r.end - 1)
        })
        .collect();
    let all_outputs: Vec<usize> = (0..10).collect();
    Ok(gram.update_similarity(&updates, &all_outputs)?)
}

/// Computes and writes the matrices and the stage comparisons.
pub(super) fn analyse(run: &RunDir, data: &Split, s: &Settings, t: &Trained) -> Result<Analysis> {
    let start = Instant::now();
    let (gaussian, gram, weights, cka) = matrices(run, t, data, s)?;
    let labels: Vec<String> = t
        .trajectory
        .records
        .iter()
        .map(|r| format!("{} @{}", r.stage_name, r.step))
        .collect();
    run.write_matrix("gaussian", &labels, &gaussian.total)?;
    for (c, m) in gaussian.slices.iter().enumerate() {
        run.write_matrix(&format!("gaussian-class{c}"), &labels, m)?;
    }
    run.write_matrix("cka-logits", &labels, &cka)?;
    run.write_matrix("matrix-cosine", &labels, &weights)?;

    let ns = t.stages.len();
    let stage_similarity: Vec<Vec<f64>> = (0..ns)
        .map(|a| {
            (0..ns)
                .map(|b| block_mean(gaussian.total.as_ref(), t.stage_range(a), t.stage_range(b)))
                .collect()
        })
        .collect();
    let remove9_class_change = class_change(t, &gaussian);
    let updates = update_matrix(t, &gram)?;
    let add9 = t
        .stages
        .iter()
        .position(|st| st.name == "add 9")
        .expect("known stage");
    let update_similarity_to_add9: Vec<(String, f64)> = (0..ns)
        .map(|k| (t.stages[k].name.clone(), updates[(k, add9)]))
        .collect();
    let stage_names: Vec<String> = t.stages.iter().map(|st| st.name.clone()).collect();
    run.write_matrix("stage-updates", &stage_names, &updates)?;
    Ok(Analysis {
        gaussian,
        cka,
        weights,
        stage_similarity,
        remove9_class_change,
        update_matrix: updates,
        update_similarity_to_add9,
        seconds: start.elapsed().as_secs_f64(),
    })
}
