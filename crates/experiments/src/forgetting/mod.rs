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
    pub seed: u64,
}

/// The run's settings, written to `settings.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub epochs_per_stage: f64,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay, scaled so that a stage shrinks the
    /// weights as much as a stage of the paper's run did ([`paper_matched_decay`]).
    pub weight_decay: f64,
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

impl Settings {
    /// The defaults (5 epochs per stage) or the reduced `--quick` ones.
    pub fn new(opts: &Options, available_images: usize) -> Self {
        let epochs_per_stage = opts.epochs.unwrap_or(if opts.quick { 0.25 } else { 5.0 });
        let train_images = if opts.quick { Some(12_000) } else { None };
        let images = train_images.map_or(available_images, |n| n.min(available_images));
        Settings {
            epochs_per_stage,
            batch_size: 248,
            learning_rate: 1e-3,
            weight_decay: paper_matched_decay(epochs_per_stage, images),
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
    let data = tensim_data::load_dataset("mnist", None)?;
    let s = Settings::new(opts, data.train.len());
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
        let default = paper_matched_decay(5.0, 60_000);
        assert!((default - 2.442).abs() < 1e-3, "{default}");
        // wd × epochs × images, hence the per-stage decay exp(−wd·Σlr), is kept.
        let product = |e: f64, n: usize| paper_matched_decay(e, n) * e * n as f64;
        assert!((product(5.0, 60_000) - product(20.0, 73_257)).abs() < 1e-6);
    }
}
