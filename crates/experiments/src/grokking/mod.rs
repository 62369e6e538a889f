//! `tensim experiment grokking` (EXPERIMENTS §3): modular addition with a
//! bilinear layer; train/validation curves, the Fourier frequencies read from
//! the weights at every checkpoint, and tensor similarity across checkpoints.
//!
//! Stages: [`Settings`] → `train` (power-spaced checkpoints through the
//! shared recorder) → `analysis` (frequencies, similarity, phase change) →
//! `figures` → `report`.

mod analysis;
mod figures;
mod report;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tensim_train::Schedule;

/// What the caller chooses (the CLI's flags).
pub type Options = crate::StepOptions;

/// The run's settings, written to `settings.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub modulus: usize,
    pub train_fraction: f64,
    pub hidden: usize,
    pub steps: u64,
    pub checkpoints: usize,
    pub schedule_exponent: f64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub eigenvectors: usize,
    pub seed: u64,
}

impl Settings {
    /// The defaults (100,000 steps) or the reduced `--quick` ones.
    pub fn new(opts: &Options) -> Self {
        Settings {
            modulus: 113,
            train_fraction: 0.3,
            hidden: 64,
            steps: opts
                .steps
                .unwrap_or(if opts.quick { 1500 } else { 100_000 }),
            checkpoints: if opts.quick { 25 } else { 100 },
            schedule_exponent: 5.0,
            batch_size: 512,
            learning_rate: 1e-3,
            weight_decay: 0.3,
            eigenvectors: 4,
            seed: opts.seed,
        }
    }
}

/// One checkpoint's line in `metrics.jsonl` (the recorder appends the file).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    step: u64,
    train_loss: f64,
    train_accuracy: f64,
    validation_loss: f64,
    validation_accuracy: f64,
}

/// Everything measured, for the report and `--json`.
#[derive(Serialize)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub checkpoints: usize,
    pub final_train_accuracy: f64,
    pub final_validation_accuracy: f64,
    pub train_crosses_099: Option<u64>,
    pub validation_crosses_05: Option<u64>,
    pub validation_crosses_099: Option<u64>,
    pub dominant_frequencies: Vec<(usize, f64)>,
    pub detected_phase_change_step: u64,
    pub phase_change_contrast: f64,
    pub seconds_training: f64,
    pub seconds_analysis: f64,
    pub seconds_total: f64,
    pub steps_per_second: f64,
}

/// The first checkpoint step where `f` reaches `level`.
fn first_crossing(records: &[Record], f: impl Fn(&Record) -> f64, level: f64) -> Option<u64> {
    records.iter().find(|r| f(r) >= level).map(|r| r.step)
}

/// Runs the experiment into `opts.out`: settings, training, frequencies,
/// similarity, figures and `report.md`.
pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let s = Settings::new(opts);
    let schedule = crate::checkpoint_steps(
        Schedule::Power {
            count: s.checkpoints,
            exponent: s.schedule_exponent,
        },
        s.steps,
    )?;
    let settings = serde_json::to_string_pretty(&s)?;
    let run = crate::start_run(&opts.out, opts.force, opts.resume, &settings)?;

    let trained = train::train(&run, &s, &schedule)?;
    let records = &trained.trajectory.records;
    let analysis_start = Instant::now();
    let found = analysis::analyse(&run, &s, &trained.trajectory)?;
    figures::render(&run, records, &found)?;
    let seconds_analysis = analysis_start.elapsed().as_secs_f64();

    let last = records.last().expect("records");
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        checkpoints: records.len(),
        final_train_accuracy: last.train_accuracy,
        final_validation_accuracy: last.validation_accuracy,
        train_crosses_099: first_crossing(records, |r| r.train_accuracy, 0.99),
        validation_crosses_05: first_crossing(records, |r| r.validation_accuracy, 0.5),
        validation_crosses_099: first_crossing(records, |r| r.validation_accuracy, 0.99),
        dominant_frequencies: found.dominant.clone(),
        detected_phase_change_step: records[found.best.index].step,
        phase_change_contrast: found.best.contrast,
        seconds_training: trained.seconds,
        seconds_analysis,
        seconds_total: started.elapsed().as_secs_f64(),
        steps_per_second: s.steps as f64 / trained.seconds,
    };
    run.write_text(
        "report.md",
        &report::render(&outcome, &s, opts.quick, records),
    )?;
    run.finish()?;
    Ok(outcome)
}
