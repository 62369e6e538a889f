//! `tensim experiment forgetting` (EXPERIMENTS §2): a DeepMLP trained through
//! a class-incremental curriculum; Gaussian functional similarity (moment
//! propagation), its ten class slices, CKA and matrix cosine over all
//! checkpoints; similarity of each stage's update to the "add 9" update.
//!
//! Stages: [`Settings`] → `train` (the curriculum, checkpoints through the
//! shared recorder) → `analysis` (matrices, stage blocks, updates) →
//! `figures` → `report`.

mod analysis;
mod figures;
mod report;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// What the caller chooses (the CLI's flags).
pub struct Options {
    pub out: PathBuf,
    pub force: bool,
    /// Continue the run a killed process left (else start one).
    pub resume: bool,
    pub quick: bool,
    pub epochs: Option<f64>,
    /// AdamW weight decay (default: [`default_decay`], the paper's per-stage
    /// decay, four times on the bundled data).
    pub weight_decay: Option<f64>,
    /// `mnist` (bundled), `digits` (bundled) or `svhn` (from `svhn_dir`, the paper's data).
    pub data: String,
    /// Folder with SVHN's `train_32x32.mat` and `test_32x32.mat`.
    pub svhn_dir: Option<PathBuf>,
    pub seed: u64,
}

/// The run's settings, written to `settings.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// The dataset trained on (`mnist`, `digits` or `svhn`).
    pub dataset: String,
    /// Pixels per image.
    pub inputs: usize,
    pub epochs_per_stage: f64,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay: by default the paper's per-stage
    /// decay times the dataset's regime factor ([`default_decay`]).
    pub weight_decay: f64,
    /// The decay that gives this run's stages the paper's per-stage shrinking.
    pub paper_matched_decay: f64,
    /// Whether `weight_decay` is the default (else set by the caller).
    pub default_decay: bool,
    /// Batches between checkpoints; `None`: spaced so that the run has about
    /// `checkpoints` of them.
    pub checkpoint_every: Option<u64>,
    /// About how many checkpoints enter the matrices (the paper's heatmaps
    /// used 80 spread over the stages).
    pub checkpoints: u64,
    pub embed: usize,
    pub hidden: usize,
    pub cka_images: usize,
    pub train_images: Option<usize>,
    pub seed: u64,
}

/// The paper's setting: AdamW weight decay 0.5, 20 epochs per stage on
/// SVHN's 73,257 training images.
const PAPER_WEIGHT_DECAY: f64 = 0.5;
const PAPER_EPOCHS: f64 = 20.0;
const PAPER_TRAIN_IMAGES: f64 = 73_257.0;

/// Weight decay that gives a stage of `epochs` epochs over `train_images`
/// images the paper's per-stage decay. AdamW multiplies every weight by
/// `1 − lr·wd` per step, so a stage shrinks a weight no gradient supports by
/// `exp(−wd·Σ lr)`, and with the same cosine schedule `Σ lr` is proportional
/// to the stage's steps, i.e. to epochs × images. Keeping `wd × epochs ×
/// images` at the paper's value keeps that factor (about 0.25 for "add 9").
pub fn paper_matched_decay(epochs: f64, train_images: usize) -> f64 {
    PAPER_WEIGHT_DECAY * PAPER_EPOCHS * PAPER_TRAIN_IMAGES / (epochs * train_images as f64)
}

/// How much stronger than the paper's per-stage decay the bundled datasets
/// train with: the paper's SVHN model underfits (85 % training accuracy at
/// the end), so the data pin its solution and "remove 9" returns to "add
/// 8"; an MNIST model at the paper's per-stage decay fits its training data
/// (98 % test accuracy) and its class slices drift from stage to stage along
/// directions the data leave free. Four times the decay puts it in the
/// paper's regime (89 % test accuracy); docs/EXPERIMENTS.md §2 has the
/// measurements. SVHN, the paper's data, keeps the paper's decay.
pub fn regime_factor(dataset: &str) -> f64 {
    if dataset == "svhn" {
        1.0
    } else {
        4.0
    }
}

/// The largest default decay per step (`lr · wd`): stages of a few steps
/// (`--quick`) would otherwise shrink the weights to nothing at each step.
const MAX_DECAY_PER_STEP: f64 = 0.02;

/// The default weight decay of a run: the paper's per-stage decay
/// ([`paper_matched_decay`]) times [`regime_factor`], at most
/// [`MAX_DECAY_PER_STEP`] per step.
pub fn default_decay(dataset: &str, epochs: f64, train_images: usize, lr: f64) -> f64 {
    let decay = regime_factor(dataset) * paper_matched_decay(epochs, train_images);
    decay.min(MAX_DECAY_PER_STEP / lr)
}

/// Epochs per stage by default: 5 on MNIST (the paper's 20 do not fit the
/// CPU budget), 100 on the 1,437 images of the 8×8 digits, the paper's 20
/// on SVHN; a quarter epoch (of 12,000 images) with `--quick`.
fn default_epochs(dataset: &str, quick: bool) -> f64 {
    match (quick, dataset) {
        (true, "digits") => 10.0,
        (true, _) => 0.25,
        (false, "digits") => 100.0,
        (false, "svhn") => PAPER_EPOCHS,
        (false, _) => 5.0,
    }
}

impl Settings {
    /// The defaults or the reduced `--quick` ones, for the dataset `data`.
    pub fn new(opts: &Options, data: &tensim_data::Split) -> Self {
        let available_images = data.train.len();
        let epochs_per_stage = opts
            .epochs
            .unwrap_or_else(|| default_epochs(&data.name, opts.quick));
        let train_images = if opts.quick { Some(12_000) } else { None };
        let images = train_images.map_or(available_images, |n| n.min(available_images));
        let learning_rate = 1e-3;
        Settings {
            dataset: data.name.clone(),
            inputs: data.train.dim(),
            epochs_per_stage,
            batch_size: 248,
            learning_rate,
            weight_decay: opts.weight_decay.unwrap_or_else(|| {
                default_decay(&data.name, epochs_per_stage, images, learning_rate)
            }),
            paper_matched_decay: paper_matched_decay(epochs_per_stage, images),
            default_decay: opts.weight_decay.is_none(),
            checkpoint_every: opts.quick.then_some(25),
            checkpoints: 80,
            embed: 128,
            hidden: 256,
            cka_images: if opts.quick { 500 } else { 2000 },
            train_images,
            seed: opts.seed,
        }
    }
}

/// One checkpoint's line in `metrics.jsonl` (the recorder appends the file).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    step: u64,
    stage: usize,
    stage_name: String,
    test_accuracy: f64,
    per_digit_accuracy: Vec<f64>,
}

/// Everything measured, for the report and `--json`.
#[derive(Serialize)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub checkpoints: usize,
    /// Batches between checkpoints within a stage.
    pub checkpoint_every: u64,
    pub stage_names: Vec<String>,
    /// Mean Gaussian similarity between the checkpoints of two stages.
    pub stage_similarity: Vec<Vec<f64>>,
    pub remove9_vs_add8: f64,
    pub remove9_vs_add9: f64,
    pub readd9_vs_add9: f64,
    pub readd9_vs_add8: f64,
    pub add9_vs_control: f64,
    /// Classes ranked by how much their slice changed at "remove 9" (1 − mean similarity to "control").
    pub remove9_class_change: Vec<(usize, f64)>,
    /// Similarity of each stage's update (first → last checkpoint) to the "add 9" update.
    pub update_similarity_to_add9: Vec<(String, f64)>,
    pub final_per_digit_accuracy: Vec<f64>,
    pub seconds_training: f64,
    pub seconds_matrices: f64,
    pub seconds_figures: f64,
    pub seconds_total: f64,
}

/// Runs the experiment into `opts.out`: settings, the curriculum, matrices,
/// figures and `report.md`.
pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let data = tensim_data::load_dataset(&opts.data, opts.svhn_dir.as_deref())?;
    let s = Settings::new(opts, &data);
    let settings = serde_json::to_string_pretty(&s)?;
    let run = crate::start_run(&opts.out, opts.force, opts.resume, &settings)?;

    let trained = train::train(&run, &data, &s)?;
    let found = analysis::analyse(&run, &data, &s, &trained)?;
    let seconds_figures = figures::render(&run, &trained, &found)?;

    let stage_names: Vec<String> = trained.stages.iter().map(|st| st.name.clone()).collect();
    let records = &trained.trajectory.records;
    let sim = &found.stage_similarity;
    let stage = |name: &str| {
        stage_names
            .iter()
            .position(|n| n == name)
            .expect("known stage")
    };
    let (add8, add9, remove9, readd9) = (
        stage("add 8"),
        stage("add 9"),
        stage("remove 9"),
        stage("re-add 9"),
    );
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        checkpoints: records.len(),
        checkpoint_every: trained.checkpoint_every,
        remove9_vs_add8: sim[remove9][add8],
        remove9_vs_add9: sim[remove9][add9],
        readd9_vs_add9: sim[readd9][add9],
        readd9_vs_add8: sim[readd9][add8],
        add9_vs_control: sim[add9][stage("control")],
        stage_names,
        stage_similarity: found.stage_similarity.clone(),
        remove9_class_change: found.remove9_class_change.clone(),
        update_similarity_to_add9: found.update_similarity_to_add9.clone(),
        final_per_digit_accuracy: records.last().expect("records").per_digit_accuracy.clone(),
        seconds_training: trained.seconds,
        seconds_matrices: found.seconds,
        seconds_figures,
        seconds_total: started.elapsed().as_secs_f64(),
    };
    run.write_text(
        "report.md",
        &report::render(&outcome, &s, opts.quick, &trained.stage_steps),
    )?;
    run.finish()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matched_decay_is_the_papers_at_its_setting_and_scales_with_stage_length() {
        assert!((paper_matched_decay(20.0, 73_257) - 0.5).abs() < 1e-12);
        let matched = paper_matched_decay(5.0, 60_000);
        assert!((matched - 2.442).abs() < 1e-3, "{matched}");
        let default = default_decay("mnist", 5.0, 60_000, 1e-3);
        assert!((default - 4.0 * matched).abs() < 1e-12, "{default}");
        assert_eq!(default_decay("svhn", 20.0, 73_257, 1e-3), 0.5);
        // A quick run's few steps per stage are capped at 2 % decay per step.
        assert!((default_decay("mnist", 0.25, 12_000, 1e-3) - 20.0).abs() < 1e-9);
        // wd × epochs × images, hence the per-stage decay exp(−wd·Σlr), is kept.
        let product = |e: f64, n: usize| paper_matched_decay(e, n) * e * n as f64;
        assert!((product(5.0, 60_000) - product(20.0, 73_257)).abs() < 1e-6);
    }
}
