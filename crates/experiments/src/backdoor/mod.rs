//! `tensim experiment backdoor` (EXPERIMENTS §1): train a bilinear classifier
//! on clean data (phase A), then poison 10% of each batch with a trigger that
//! relabels to 9 (phase B); compare all checkpoints with every metric and find
//! the attacked class from tensor similarity alone, without the trigger.
//!
//! Stages: [`Settings`] → `train` (checkpoints through the shared recorder)
//! → `analysis` (matrices, Δ, detection) → `figures` → `report`.

mod analysis;
mod data;
mod figures;
mod report;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tensim_data::Split;

/// What the caller chooses (the CLI's flags).
pub struct Options {
    pub out: PathBuf,
    pub force: bool,
    /// Continue the run a killed process left (else start one).
    pub resume: bool,
    pub quick: bool,
    pub data: String,
    pub svhn_dir: Option<PathBuf>,
    pub seed: u64,
}

/// EXPERIMENTS §1 settings (the default) or the reduced `--quick` ones;
/// written to `settings.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub steps_clean: u64,
    pub steps_poisoned: u64,
    pub checkpoint_every: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub input_noise: f32,
    pub poison_rate: f64,
    pub target_class: u8,
    pub hidden: usize,
    pub eval_images: usize,
    pub train_eval_images: Option<usize>,
    pub seed: u64,
    pub dataset: String,
}

impl Settings {
    pub fn new(quick: bool, seed: u64, dataset: &str) -> Self {
        Settings {
            steps_clean: if quick { 600 } else { 8000 },
            steps_poisoned: if quick { 200 } else { 2000 },
            checkpoint_every: if quick { 50 } else { 250 },
            batch_size: 512,
            learning_rate: 1e-3,
            weight_decay: 1e-3,
            input_noise: 0.05,
            poison_rate: 0.1,
            target_class: 9,
            hidden: 64,
            eval_images: if quick { 500 } else { 2000 },
            train_eval_images: if quick { Some(5000) } else { None },
            seed,
            dataset: dataset.to_string(),
        }
    }
}

/// One checkpoint's line in `metrics.jsonl` (the recorder appends the file).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    step: u64,
    phase: String,
    train_loss: f64,
    train_accuracy: f64,
    test_loss: f64,
    test_accuracy: f64,
    attack_success: f64,
}

/// Everything measured, for the report and `--json`.
#[derive(Serialize)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub checkpoints: usize,
    pub final_train_accuracy: f64,
    pub final_test_accuracy: f64,
    pub attack_success_before: f64,
    pub attack_success_after: f64,
    pub deltas: Vec<(String, f64)>,
    pub detected_boundary_step: u64,
    /// The best split of the total tensor matrix (not class-specific), for comparison.
    pub total_matrix_split_step: u64,
    pub true_boundary_step: u64,
    pub detected_class: usize,
    pub runner_up_class: usize,
    pub class_margin: f64,
    pub seconds_training: f64,
    pub seconds_matrices: f64,
    pub seconds_figures: f64,
    pub steps_per_second: f64,
}

/// Runs the experiment into `opts.out`: settings, training, matrices,
/// figures and `report.md`.
pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let data: Split = tensim_data::load_dataset(&opts.data, opts.svhn_dir.as_deref())?;
    let s = Settings::new(opts.quick, opts.seed, &data.name);
    let sets = data::EvalSets::new(&data, &s)?;
    // Every input is checked above (the trigger fits, the data loaded): only now create the run.
    let settings = serde_json::to_string_pretty(&s)?;
    let run = crate::start_run(&opts.out, opts.force, opts.resume, &settings)?;

    let trained = train::train(&run, &data, &sets, &s)?;
    let records = &trained.trajectory.records;
    let found = analysis::analyse(&run, &data, &sets, &trained.trajectory)?;
    let seconds_figures = figures::render(&run, &s, &data, &sets, &trained.trajectory, &found)?;

    let (b_start, n) = (found.b_start, records.len());
    let last_a = &records[b_start - 1];
    let last = records.last().expect("records");
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        checkpoints: n,
        final_train_accuracy: last.train_accuracy,
        final_test_accuracy: last.test_accuracy,
        attack_success_before: last_a.attack_success,
        attack_success_after: last.attack_success,
        deltas: found.deltas.clone(),
        detected_boundary_step: records[found.class_splits[0].index].step,
        total_matrix_split_step: records[found.splits[0].index].step,
        true_boundary_step: records[b_start].step,
        detected_class: found.ranked[0].0,
        runner_up_class: found.ranked[1].0,
        class_margin: found.ranked[0].1 - found.ranked[1].1,
        seconds_training: trained.seconds,
        seconds_matrices: found.seconds,
        seconds_figures,
        steps_per_second: trained.steps as f64 / trained.seconds,
    };
    let report = report::render(&report::ReportInput {
        settings_json: serde_json::to_string_pretty(&s)?,
        quick: opts.quick,
        dataset: data.name.clone(),
        outcome: &outcome,
        named: found
            .named
            .iter()
            .map(|(k, n, _)| (k.clone(), n.clone()))
            .collect(),
        splits: &found.splits,
        class_splits: &found.class_splits,
        ranked: &found.ranked,
        n_a: b_start,
        n_b: n - b_start,
        wall_seconds: started.elapsed().as_secs_f64(),
        steps_clean: s.steps_clean,
        every: s.checkpoint_every,
        record_steps: records.iter().map(|r| r.step).collect(),
    });
    run.write_text("report.md", &report)?;
    run.finish()?;
    Ok(outcome)
}
