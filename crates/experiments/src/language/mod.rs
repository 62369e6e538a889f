//! `tensim experiment language` (EXPERIMENTS §4): transformers of the
//! paper's family (attention-only bilinear blocks, additive residual, q/k
//! biases, rotary; 1 and 2 layers) trained on the bundled Shakespeare with
//! a byte-pair vocabulary learnt from it, checkpointed on a log-spaced
//! schedule, compared across checkpoints by the Gaussian similarity through
//! attention (MATH.md §3.7, checked against Monte-Carlo) and by the
//! baselines, with the paper's n-gram scores per checkpoint.
//!
//! Stages: [`Settings`] → tokenizer → `inputs` (n-gram baselines, shared
//! input sets) → per model: `train` (checkpoints through the shared
//! recorder) → `analysis` (matrices, Monte-Carlo checks, summaries) →
//! `figures`; then `report`.

mod analysis;
mod figures;
mod inputs;
mod report;
mod train;

pub use analysis::{monte_carlo_cosine, MonteCarloCheck};

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tensim_core::transformer::Transformer;
use tensim_data::{load_text_dataset, BpeTokenizer, DEFAULT_VAL_FRACTION};
use tensim_train::Schedule;

use crate::recorder::Recorder;
use crate::resume;

/// What the caller chooses (the CLI's flags).
#[derive(Clone, Debug)]
pub struct Options {
    /// Run directory (refused if it holds a run, unless `force`).
    pub out: PathBuf,
    /// Overwrite an existing run directory.
    pub force: bool,
    /// Continue the run a killed process left (else start one).
    pub resume: bool,
    /// A reduced run for tests and a first look.
    pub quick: bool,
    /// The paper's model size (EXPERIMENTS §4), for machines that can afford it.
    pub paper: bool,
    /// Training steps per model (the preset's default when `None`).
    pub steps: Option<u64>,
    /// Seed of data order and initialisation.
    pub seed: u64,
}

/// The run's settings, written to `settings.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// `"default"`, `"quick"` or `"paper"`.
    pub preset: &'static str,
    pub corpus: &'static str,
    /// Byte-pair-encoding vocabulary requested (learnt on the training text).
    pub bpe_vocab: usize,
    /// Ids of the learnt tokenizer (at most `bpe_vocab`).
    pub vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub context: usize,
    /// `s` of the additive residual `x + s·attention(x)`.
    pub attention_scale: f64,
    pub layers: Vec<usize>,
    pub steps: u64,
    /// Log-spaced checkpoints from `first_checkpoint` to `steps` (plus step 0).
    pub checkpoints: usize,
    pub first_checkpoint: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub warmup_steps: u64,
    pub gaussian_positions: usize,
    pub eval_windows: usize,
    /// Held-out sequences for the paper's `l_test(n)`.
    pub ngram_sequences: usize,
    /// Most common n-grams for the paper's `l_gram(n)` (1,000 in the paper).
    pub common_ngrams: usize,
    pub gaussian_samples: usize,
    /// Sequences per Monte-Carlo check of `gaussian`.
    pub monte_carlo_samples: usize,
    pub seed: u64,
}

impl Settings {
    /// The preset `opts` selects: the default CPU run, `--quick`, or
    /// `--paper` (the paper's size); `--steps` overrides its steps.
    pub fn new(opts: &Options) -> Self {
        let default = Settings {
            preset: "default",
            corpus: "shakespeare (bundled, case kept)",
            bpe_vocab: 1024,
            vocab: 0,
            d_model: 32,
            heads: 2,
            head_dim: 16,
            context: 32,
            attention_scale: 0.35,
            layers: vec![1, 2],
            steps: 3000,
            checkpoints: 16,
            first_checkpoint: 0,
            batch_size: 32,
            learning_rate: 3e-3,
            weight_decay: 0.01,
            warmup_steps: 0,
            gaussian_positions: 4,
            eval_windows: 512,
            ngram_sequences: 4096,
            common_ngrams: 1000,
            gaussian_samples: 128,
            monte_carlo_samples: 10_000,
            seed: opts.seed,
        };
        let mut s = if opts.paper {
            // EXPERIMENTS §4 and the paper's configuration: vocabulary 4096,
            // d_model 256, 8 heads of 32, 2 layers, batch 64, 10,000 steps,
            // weight decay 0.1, 100 warm-up steps (AdamW only here; the
            // paper also used Muon), context 256 (the paper trained at 512).
            Settings {
                preset: "paper",
                bpe_vocab: 4096,
                d_model: 256,
                heads: 8,
                head_dim: 32,
                context: 256,
                layers: vec![2],
                steps: 10_000,
                checkpoints: 75,
                batch_size: 64,
                learning_rate: 1e-3,
                weight_decay: 0.1,
                gaussian_samples: 64,
                ..default
            }
        } else if opts.quick {
            Settings {
                preset: "quick",
                bpe_vocab: 256,
                context: 16,
                steps: 60,
                checkpoints: 5,
                gaussian_positions: 2,
                eval_windows: 64,
                ngram_sequences: 512,
                common_ngrams: 200,
                gaussian_samples: 32,
                monte_carlo_samples: 2_000,
                ..default
            }
        } else {
            default
        };
        if let Some(steps) = opts.steps {
            s.steps = steps;
        }
        s.warmup_steps = (s.steps / 20).min(100);
        // The loss barely moves before the warm-up ends: log-spaced
        // checkpoints start at 1% of training, like the paper's selection.
        s.first_checkpoint = (s.steps / 100).max(1);
        s
    }

    /// Step 0 and `checkpoints − 1` log-spaced steps from
    /// `first_checkpoint` to `steps`, rounded and deduplicated.
    pub fn schedule(&self) -> Vec<u64> {
        let n = self.checkpoints.max(2);
        let (lo, hi) = (
            (self.first_checkpoint.max(1) as f64).ln(),
            (self.steps.max(1) as f64).ln(),
        );
        let mut steps: Vec<u64> = std::iter::once(0)
            .chain((0..n - 1).map(|i| {
                (lo + (hi - lo) * i as f64 / (n - 2).max(1) as f64)
                    .exp()
                    .round() as u64
            }))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }
}

/// One checkpoint's line in `metrics.jsonl` (the recorder appends the file).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    layers: usize,
    step: u64,
    /// The last training step's loss (NaN, written `null`, at step 0).
    #[serde(deserialize_with = "crate::recorder::null_as_nan")]
    train_loss: f64,
    /// Held-out loss from position `n − 2` for the n-gram order `n` = 2, 3, 4.
    heldout_loss: [f64; 3],
    /// The paper's n-gram score `l_test(n) / l_gram(n)` for n = 2, 3, 4
    /// (EXPERIMENTS §4; higher is better).
    ngram_scores: [f64; 3],
    /// `l_test(n)`: loss on the n-th token of held-out sequences.
    position_loss: [f64; 3],
    /// `l_gram(n)`: loss on the last token of the most common n-grams.
    common_ngram_loss: [f64; 3],
    /// tensim's own measure: held-out loss from position `n − 2` divided by
    /// the Kneser–Ney n-gram model's (below 1: the model beats it).
    kn_ratio: [f64; 3],
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
    /// The paper's n-gram scores at the last checkpoint.
    pub final_ngram_scores: [f64; 3],
    /// Held-out loss / Kneser–Ney loss at the last checkpoint.
    pub final_kn_ratios: [f64; 3],
    /// Held-out losses of the Kneser–Ney 2-, 3- and 4-gram models.
    pub ngram_losses: [f64; 3],
    pub gaussian_exactness: String,
    /// `gaussian` against Monte-Carlo at a few pairs of checkpoints.
    pub monte_carlo_checks: Vec<analysis::MonteCarloCheck>,
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
    let mut s = Settings::new(opts);
    let schedule = crate::checkpoint_steps(Schedule::List(s.schedule()), s.steps)?;
    let text =
        load_text_dataset("shakespeare").context("loading the bundled Shakespeare corpus")?;
    // The last 10% of the text is held out; the merges are learnt on the rest.
    let cut = text.len() - (text.len() as f64 * DEFAULT_VAL_FRACTION).round() as usize;
    let (train_text, val_text) = text.split_at(cut);
    eprintln!(
        "learning {} byte-pair merges on the training text…",
        s.bpe_vocab
    );
    let tokenizer = BpeTokenizer::train_with_alphabet(train_text, &text, s.bpe_vocab);
    s.vocab = tokenizer.vocab_size();
    let settings = serde_json::to_string_pretty(&s)?;
    let run = crate::start_run(&opts.out, opts.force, opts.resume, &settings)?;
    run.write_text("tokenizer.json", &tokenizer.to_json())?;
    let train_tokens = tokenizer.encode(train_text)?;
    let val_tokens = tokenizer.encode(val_text)?;

    let inputs = inputs::Inputs::new(train_tokens, &val_tokens, &s);
    let resumed = resume::load::<train::Position>(&run)?;
    let mut recorder: Recorder<Transformer, Record> = match &resumed {
        Some(r) => Recorder::reopen(&run, r.checkpoints)?,
        None => Recorder::new(&run),
    };
    let mut outcomes = Vec::new();
    for &layers in &s.layers {
        let trained = train::train(
            &mut recorder,
            &s,
            &schedule,
            &inputs,
            layers,
            resumed.as_ref(),
        )?;
        let start = Instant::now();
        let found = analysis::analyse(&run, &s, &inputs, &trained)?;
        figures::render(&run, &inputs, &trained, &found)?;
        let last = trained.trajectory.records.last().expect("checkpoints");
        outcomes.push(ModelOutcome {
            layers,
            checkpoints: trained.trajectory.len(),
            final_heldout_loss: last.heldout_loss[0],
            final_ngram_scores: last.ngram_scores,
            final_kn_ratios: last.kn_ratio,
            ngram_losses: inputs.ngram_losses,
            gaussian_exactness: found.exactness,
            monte_carlo_checks: found.checks,
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
    run.write_text("report.md", &report::render(&outcome, &s))?;
    run.finish()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(quick: bool, paper: bool) -> Options {
        Options {
            out: PathBuf::from("unused"),
            force: false,
            resume: false,
            quick,
            paper,
            steps: None,
            seed: 1,
        }
    }

    /// Checkpoints are log-spaced over the range where the loss moves: step 0,
    /// then from 1% of training to the end, none of them repeated.
    #[test]
    fn schedules_start_at_one_percent_of_training() {
        for (quick, paper, distinct) in [(false, false, 15), (true, false, 5), (false, true, 70)] {
            let s = Settings::new(&options(quick, paper));
            let steps = s.schedule();
            assert_eq!(steps[0], 0);
            assert_eq!(steps[1], s.first_checkpoint);
            assert_eq!(*steps.last().unwrap(), s.steps);
            assert!(steps.windows(2).all(|w| w[0] < w[1]));
            assert!(
                steps.len() >= distinct,
                "{} of {}",
                steps.len(),
                s.checkpoints
            );
            assert!(steps.len() <= s.checkpoints);
        }
        let s = Settings::new(&options(false, false));
        assert_eq!(s.first_checkpoint, 30);
        // Half of the checkpoints lie past a tenth of training.
        let late = s.schedule().iter().filter(|&&t| t >= s.steps / 10).count();
        assert!(late * 2 >= s.schedule().len(), "{late}");
    }

    #[test]
    fn the_paper_preset_has_the_papers_size() {
        let s = Settings::new(&options(false, true));
        assert_eq!(
            (s.bpe_vocab, s.d_model, s.heads, s.head_dim),
            (4096, 256, 8, 32)
        );
        assert_eq!(
            (s.layers.clone(), s.steps, s.checkpoints),
            (vec![2], 10_000, 75)
        );
        assert_eq!(s.attention_scale, 0.35);
    }
}
