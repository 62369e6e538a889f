//! Pair-level resume of an experiment's matrix stage: every pair of the
//! dear matrices (tensor and Gaussian similarity over the checkpoints) is
//! appended to `progress/NAME.pairs` in the run directory as it finishes
//! (the pairs file of `tensim matrix --resume`, `tensim_io::pairs_file`), so
//! a run killed during its analysis and continued with `--resume`
//! recomputes only the pairs it had not finished, and its matrices are bit
//! for bit those of an uninterrupted run. The header hashes every model's
//! parameters, so a progress file never feeds another computation; the
//! files go when the run completes ([`crate::run_dir::RunDir::finish`]).

use anyhow::{Context, Result};
use tensim_core::pair_plan::PairPlan;
use tensim_io::pairs_file::{self, InputsHasher, PairsHeader};

use crate::run_dir::RunDir;

/// The folder of the progress files, relative to the run directory.
pub const DIR: &str = "progress";

/// Computes the matrix `name` (of metric `metric`, over models whose
/// parameters `parameters` lists in order) through a plan that knows the
/// pairs an interrupted run finished and records every new one.
pub fn resumable<T>(
    run: &RunDir,
    name: &str,
    metric: &str,
    parameters: impl IntoIterator<Item = Vec<Vec<f64>>>,
    compute: impl FnOnce(&PairPlan<'_>) -> Result<T>,
) -> Result<T> {
    let mut hash = InputsHasher::default();
    hash.field(b"tensim experiment pairs 1");
    hash.field(name.as_bytes());
    hash.field(metric.as_bytes());
    let mut labels = Vec::new();
    for model in parameters {
        hash.field(b"model");
        for tensor in &model {
            hash.numbers(tensor);
        }
        labels.push(format!("checkpoint {}", labels.len()));
    }
    let header = PairsHeader {
        hash: hash.finish(),
        metric: metric.to_string(),
        description: format!("{name} over the run's checkpoints"),
        labels,
    };
    let dir = run.path(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.pairs"));
    pairs_file::with_progress_file(&path, &header, PairPlan::all(), |plan| {
        if plan.known_count() > 0 {
            eprintln!(
                "{name}: {} pairs already computed before the interruption",
                plan.known_count()
            );
        }
        compute(plan)
    })
}
