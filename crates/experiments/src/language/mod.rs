//! `tensim experiment language` (EXPERIMENTS §4): bilinear-attention
//! transformers (1 and 2 layers) trained on the bundled Shakespeare,
//! checkpointed on a log-spaced schedule, compared across checkpoints by the
//! exact Gaussian similarity through attention (MATH.md §3) and by the
//! baselines, with n-gram scores per checkpoint.
//!
//! Stages: [`Settings`] → `inputs` (corpus, n-gram baselines, shared input
//! sets) → per model: `train` (checkpoints through the shared recorder) →
//! `analysis` (matrices, summaries) → `figures`; then `report`.

mod analysis;
mod figures;
mod inputs;
mod report;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use tensim_core::transformer::Transformer;
use tensim_data::{load_text_dataset, CharTokenizer};
use tensim_train::Schedule;

use crate::recorder::Recorder;
use crate::run_dir::RunDir;

/// What the caller chooses (the CLI's flags).
pub type Options = crate::StepOptions;

/// The run's settings, written to `settings.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub corpus: &'static str,
    pub vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub context: usize,
    pub mlp_hidden: usize,
    pub residual_scale: f64,
    pub layers: Vec<usize>,
    pub steps: u64,
    pub checkpoints: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub gaussian_positions: usize,
    pub eval_windows: usize,
    pub gaussian_samples: usize,
    pub seed: u64,
}

impl Settings {
    /// The defaults (6,000 steps) or the reduced `--quick` ones, for a
    /// tokenizer of `vocab` characters.
    pub fn new(opts: &Options, vocab: usize) -> Self {
        Settings {
            corpus: "shakespeare (bundled, lowercased characters)",
            vocab,
            d_model: 32,
            heads: 2,
            head_dim: 16,
            context: 16,
            mlp_hidden: 64,
            residual_scale: 0.35,
            layers: vec![1, 2],
            steps: opts.steps.unwrap_or(if opts.quick { 40 } else { 6000 }),
            checkpoints: if opts.quick { 5 } else { 24 },
            batch_size: 64,
            learning_rate: 3e-3,
            weight_decay: 0.01,
            gaussian_positions: if opts.quick { 2 } else { 4 },
            eval_windows: if opts.quick { 64 } else { 512 },
            gaussian_samples: if opts.quick { 32 } else { 256 },
            seed: opts.seed,
        }
    }
}

/// One checkpoint's line in `metrics.jsonl` (the recorder appends the file).
#[derive(Clone, Debug, Serialize)]
struct Record {
    layers: usize,
    step: u64,
    train_loss: f64,
    /// Held-out loss from position `n − 2` for the n-gram order `n` = 2, 3, 4.
    heldout_loss: [f64; 3],
    /// Model loss / n-gram loss for n = 2, 3, 4 (EXPERIMENTS §4).
    ngram_scores: [f64; 3],
}

/// How one similarity matrix over checkpoints looks.
#[derive(Clone, Debug, Serialize)]
pub struct MetricSummary {
    pub metric: String,
    pub mean_off_diagonal: f64,
    pub first_vs_last: f64,
    pub mean_consecutive: f64,
    pub best_split_step: Option<u64>,
    pub best_split_contrast: Option<f64>,
}

/// What was measured for one model (number of layers).
#[derive(Clone, Debug, Serialize)]
pub struct ModelOutcome {
    pub layers: usize,
    pub checkpoints: usize,
    pub final_heldout_loss: f64,
    pub final_ngram_scores: [f64; 3],
    pub ngram_losses: [f64; 3],
    pub gaussian_exactness: String,
    pub metrics: Vec<MetricSummary>,
    pub seconds_training: f64,
    pub seconds_matrices: f64,
    pub steps_per_second: f64,
}

/// Everything measured, for the report and `--json`.
#[derive(Serialize)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub models: Vec<ModelOutcome>,
    pub seconds_total: f64,
}

/// Runs the experiment into `opts.out`: settings, tokenizer, both models
/// (training, matrices, figures) and `report.md`.
pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let text =
        load_text_dataset("shakespeare").context("loading the bundled Shakespeare corpus")?;
    let tokenizer = CharTokenizer::from_text(&text, 64);
    let s = Settings::new(opts, tokenizer.vocab_size());
    let schedule = crate::checkpoint_steps(
        Schedule::Log {
            count: s.checkpoints,
        },
        s.steps,
    )?;
    let run = RunDir::create(&opts.out, opts.force)?;
    run.write_text("settings.json", &serde_json::to_string_pretty(&s)?)?;
    run.write_text("tokenizer.json", &tokenizer.to_json())?;

    let inputs = inputs::Inputs::new(&text, &tokenizer, &s);
    let mut recorder: Recorder<Transformer, Record> = Recorder::new(&run);
    let mut outcomes = Vec::new();
    for &layers in &s.layers {
        let trained = train::train(&mut recorder, &s, &schedule, &inputs, layers)?;
        let start = Instant::now();
        let found = analysis::analyse(&run, &s, &inputs, &trained)?;
        figures::render(&run, &inputs, &trained, &found)?;
        let last = trained.trajectory.records.last().expect("checkpoints");
        outcomes.push(ModelOutcome {
            layers,
            checkpoints: trained.trajectory.len(),
            final_heldout_loss: last.heldout_loss[0],
            final_ngram_scores: last.ngram_scores,
            ngram_losses: inputs.ngram_losses,
            gaussian_exactness: found.exactness,
            metrics: found.metrics,
            seconds_training: trained.seconds,
            seconds_matrices: start.elapsed().as_secs_f64(),
            steps_per_second: s.steps as f64 / trained.seconds,
        });
    }
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        models: outcomes,
        seconds_total: started.elapsed().as_secs_f64(),
    };
    run.write_text("report.md", &report::render(&outcome, &s, opts.quick))?;
    Ok(outcome)
}
