//! Analysis of the backdoor run: every similarity matrix over the
//! checkpoints (written to `matrices/`), each one's Δ between the phases, and
//! the detection of the attacked class from the tensor class slices alone.

use std::time::Instant;

use anyhow::Result;
use indicatif::ProgressBar;
use tensim_core::blocks::{
    phase_delta, rank_by_change, rank_class_specific_splits, rank_splits, ClassSpecificSplit,
    PhaseSplit,
};
use tensim_core::{Mat, Model};
use tensim_data::Split;

use super::data::{to_mat, EvalSets};
use super::Record;
use crate::progress;
use crate::recorder::Trajectory;
use crate::run_dir::RunDir;
use crate::similarity_suite::{self as suite, SlicedMatrices};

/// (file key, display name, matrix) of every similarity matrix.
pub(super) type Named = Vec<(String, String, Mat<f64>)>;

/// (file key, display name, logits of every model) of an input set.
type OutputSet = (&'static str, &'static str, Vec<Mat<f64>>);

/// The matrices and what was found in them.
pub(super) struct Analysis {
    pub tensor: SlicedMatrices,
    pub named: Named,
    /// Δ (within phase B − across phases) of every matrix, by key.
    pub deltas: Vec<(String, f64)>,
    /// Index of the first phase-B checkpoint.
    pub b_start: usize,
    /// Splits of the total tensor matrix, best first.
    pub splits: Vec<PhaseSplit>,
    /// Class-specific splits of the tensor slices, best first.
    pub class_splits: Vec<ClassSpecificSplit>,
    /// Classes ranked by their change across the best class-specific split.
    pub ranked: Vec<(usize, f64)>,
    pub seconds: f64,
}

impl Analysis {
    pub fn delta_of(&self, key: &str) -> f64 {
        self.deltas
            .iter()
            .find(|d| d.0 == key)
            .map_or(f64::NAN, |d| d.1)
    }

    pub fn by_key(&self, key: &str) -> &(String, String, Mat<f64>) {
        self.named
            .iter()
            .find(|x| x.0 == key)
            .expect("computed in the analysis")
    }

    /// The baselines: every output-cosine matrix and CKA of logits, in the
    /// order of the report.
    pub fn baselines(&self) -> impl Iterator<Item = &(String, String, Mat<f64>)> {
        self.named
            .iter()
            .filter(|(key, _, _)| key.starts_with("output-") || key == "cka-logits")
    }
}

/// Logits of every model on the named input sets of the output-cosine
/// baselines, the clean set first.
fn output_sets(models: &[Model], data: &Split, sets: &EvalSets) -> Result<Vec<OutputSet>> {
    let clean_x = to_mat(&sets.eval_clean);
    let trig_x = to_mat(&sets.eval_triggered);
    let class_x = |c: u8| to_mat(&data.test.with_classes(&[c]));
    let union_x = {
        let (a, b) = (clean_x.as_ref(), trig_x.as_ref());
        Mat::from_fn(a.nrows() + b.nrows(), a.ncols(), |i, j| {
            if i < a.nrows() {
                a[(i, j)]
            } else {
                b[(i - a.nrows(), j)]
            }
        })
    };
    Ok(vec![
        (
            "output-clean",
            "output cosine, clean",
            suite::outputs(models, &clean_x)?,
        ),
        (
            "output-triggered",
            "output cosine, triggered inputs",
            suite::outputs(models, &trig_x)?,
        ),
        (
            "output-class2",
            "output cosine, class 2",
            suite::outputs(models, &class_x(2))?,
        ),
        (
            "output-class9",
            "output cosine, class 9",
            suite::outputs(models, &class_x(9))?,
        ),
        (
            "output-union",
            "output cosine, clean ∪ triggered",
            suite::outputs(models, &union_x)?,
        ),
    ])
}

/// Tensor similarity (total and slices), matrix cosine, the output cosines
/// and CKA of logits, in the order of the report.
fn matrices(
    run: &RunDir,
    models: &[Model],
    data: &Split,
    sets: &EvalSets,
    bar: &ProgressBar,
) -> Result<(SlicedMatrices, Named)> {
    let (tensor, _) = suite::tensor(run, models, bar)?;
    let weights = suite::matrix_cosine(models, bar)?;
    let outputs = output_sets(models, data, sets)?;
    let mut named: Named = vec![
        (
            "tensor".into(),
            "tensor similarity (weight space)".into(),
            tensor.total.clone(),
        ),
        ("matrix-cosine".into(), "matrix cosine".into(), weights),
    ];
    for (key, name, outs) in &outputs {
        named.push((
            key.to_string(),
            name.to_string(),
            suite::output_cosine(outs, bar)?,
        ));
    }
    named.push((
        "cka-logits".into(),
        "linear CKA of logits, clean".into(),
        suite::cka(&outputs[0].2, bar)?,
    ));
    for (c, m) in tensor.slices.iter().enumerate() {
        named.push((
            format!("tensor-class{c}"),
            format!("tensor similarity, class {c} slice"),
            m.clone(),
        ));
    }
    Ok((tensor, named))
}

/// Computes and writes the matrices, their Δ, and the detection.
pub(super) fn analyse(
    run: &RunDir,
    data: &Split,
    sets: &EvalSets,
    trajectory: &Trajectory<Model, Record>,
) -> Result<Analysis> {
    let start = Instant::now();
    let (models, records) = (&trajectory.models, &trajectory.records);
    let n = models.len();
    let b_start = records.iter().filter(|r| r.phase == "A").count();
    let pairs = (n * (n + 1) / 2) as u64;
    let bar = progress::bar(pairs * 9, "matrices");
    let (tensor, named) = matrices(run, models, data, sets, &bar)?;
    bar.finish_and_clear();
    let labels: Vec<String> = records.iter().map(|r| format!("step {}", r.step)).collect();
    for (key, _, m) in &named {
        run.write_matrix(key, &labels, m)?;
    }
    let deltas: Vec<(String, f64)> = named
        .iter()
        .map(|(k, _, m)| (k.clone(), phase_delta(m.as_ref(), b_start)))
        .collect();

    // Detection from tensor similarity alone: the boundary where one class
    // slice changed most beyond the others, then the classes ranked there.
    let splits = rank_splits(tensor.total.as_ref(), 2);
    let slice_refs: Vec<_> = tensor.slices.iter().map(|m| m.as_ref()).collect();
    let class_splits = rank_class_specific_splits(&slice_refs, 2);
    let ranked = rank_by_change(&slice_refs, class_splits[0].index);
    Ok(Analysis {
        tensor,
        named,
        deltas,
        b_start,
        splits,
        class_splits,
        ranked,
        seconds: start.elapsed().as_secs_f64(),
    })
}
