//! `tensim experiment language` (EXPERIMENTS §4): bilinear-attention
//! transformers (1 and 2 layers) trained on the bundled Shakespeare,
//! checkpointed on a log-spaced schedule, compared across checkpoints by the
//! exact Gaussian similarity through attention (MATH.md §3) and by the
//! baselines, with n-gram scores per checkpoint.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;
use tensim_core::blocks::rank_splits;
use tensim_core::monte_carlo::gaussian_inputs;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::transformer::{BlockShape, Mask, Transformer, TransformerShape};
use tensim_core::Mat;
use tensim_data::{
    eval_windows, load_text_dataset, ngram_score, split_train_val, BatchSampler, CharTokenizer,
    NgramModel, Smoothing,
};
use tensim_plot::Panel;
use tensim_train::language_model::{mean_loss, LmConfig, LmTrainer};
use tensim_train::{Schedule, TransformerNetwork};

use crate::figures::{lines, series, similarity_heatmap};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::run_dir::RunDir;

/// What the caller chooses (the CLI's flags).
pub struct Options {
    pub out: PathBuf,
    pub force: bool,
    pub quick: bool,
    pub steps: Option<u64>,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize)]
struct Settings {
    corpus: &'static str,
    vocab: usize,
    d_model: usize,
    heads: usize,
    head_dim: usize,
    context: usize,
    mlp_hidden: usize,
    residual_scale: f64,
    layers: Vec<usize>,
    steps: u64,
    checkpoints: usize,
    batch_size: usize,
    learning_rate: f64,
    weight_decay: f64,
    gaussian_positions: usize,
    eval_windows: usize,
    gaussian_samples: usize,
    seed: u64,
}

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

#[derive(Clone, Debug, Serialize)]
pub struct MetricSummary {
    pub metric: String,
    pub mean_off_diagonal: f64,
    pub first_vs_last: f64,
    pub mean_consecutive: f64,
    pub best_split_step: Option<u64>,
    pub best_split_contrast: Option<f64>,
}

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

#[derive(Serialize)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub models: Vec<ModelOutcome>,
    pub seconds_total: f64,
}

fn summarise(name: &str, m: &Mat<f64>, steps: &[u64]) -> MetricSummary {
    let n = m.nrows();
    let mut off = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                off.push(m[(i, j)]);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let consecutive: Vec<f64> = (1..n).map(|i| m[(i - 1, i)]).collect();
    let best = rank_splits(m.as_ref(), 2).into_iter().next();
    MetricSummary {
        metric: name.to_string(),
        mean_off_diagonal: mean(&off),
        first_vs_last: m[(0, n - 1)],
        mean_consecutive: mean(&consecutive),
        best_split_step: best.map(|b| steps[b.index]),
        best_split_contrast: best.map(|b| b.contrast),
    }
}

/// One cosine of two flattened output arrays (EXPERIMENTS §4: all samples ×
/// positions × classes flattened).
fn flat_cosine(a: &[f64], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-300)
}

fn parameter_vector(t: &Transformer) -> Vec<f64> {
    t.parameters().into_iter().flatten().collect()
}

/// Logits (f64) of many sequences, flattened; `forward` maps one input
/// sequence to its `n × vocab` logits.
fn flat_logits(
    inputs: &[Mat<f64>],
    forward: impl Fn(&Mat<f64>) -> tensim_core::Result<Mat<f64>>,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for x in inputs {
        let y = forward(x)?;
        for i in 0..y.nrows() {
            for j in 0..y.ncols() {
                out.push(y[(i, j)]);
            }
        }
    }
    Ok(out)
}

fn one_hot(tokens: &[u32], vocab: usize) -> Mat<f64> {
    Mat::from_fn(tokens.len(), vocab, |p, j| {
        if tokens[p] as usize == j {
            1.0
        } else {
            0.0
        }
    })
}

pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let text =
        load_text_dataset("shakespeare").context("loading the bundled Shakespeare corpus")?;
    let tokenizer = CharTokenizer::from_text(&text, 64);
    let s = Settings {
        corpus: "shakespeare (bundled, lowercased characters)",
        vocab: tokenizer.vocab_size(),
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
    };
    let schedule = crate::checkpoint_steps(
        Schedule::Log {
            count: s.checkpoints,
        },
        s.steps,
    )?;
    let run = RunDir::create(&opts.out, opts.force)?;
    run.write_text("settings.json", &serde_json::to_string_pretty(&s)?)?;
    run.write_text("tokenizer.json", &tokenizer.to_json())?;

    let tokens = tokenizer.encode(&text);
    let split = split_train_val(&tokens, 0.1);
    let windows = eval_windows(&split.val, s.context, Some(s.eval_windows));
    eprintln!("fitting 2-, 3- and 4-gram models (Kneser–Ney) on the training text…");
    let ngram_losses: [f64; 3] = [2, 3, 4].map(|n| {
        NgramModel::fit(&split.train, n, s.vocab, Smoothing::KneserNey).mean_cross_entropy(&windows)
    });
    // Shared inputs for the output cosines: held-out text, Gaussian sequences.
    let text_inputs: Vec<Mat<f64>> = windows
        .inputs
        .iter()
        .take(s.gaussian_samples)
        .map(|w| one_hot(w, s.vocab))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(s.seed ^ 0x5eed);
    let gaussian_seqs: Vec<Mat<f64>> = (0..s.gaussian_samples)
        .map(|_| gaussian_inputs(s.context, s.vocab, &mut rng))
        .collect();

    let mut recorder: Recorder<Transformer, Record> = Recorder::new(&run);
    let mut outcomes = Vec::new();
    for &layers in &s.layers {
        let shape = TransformerShape {
            vocab: s.vocab,
            d_model: s.d_model,
            heads: s.heads,
            head_dim: s.head_dim,
            context: s.context,
            mask: Mask::Causal,
            rotary_base: 1e4,
            blocks: vec![
                BlockShape {
                    attention_bias: false,
                    attention_residual: s.residual_scale,
                    mlp: Some((s.mlp_hidden, false, s.residual_scale)),
                };
                layers
            ],
        };
        let device = tensim_train::default_device();
        let net = TransformerNetwork::init(&shape, s.seed + layers as u64, &device)?;
        let config = LmConfig {
            learning_rate: s.learning_rate,
            weight_decay: s.weight_decay,
            cosine_decay: true,
            warmup_steps: (s.steps / 20).min(100),
            grad_clip: Some(1.0),
        };
        let mut trainer = LmTrainer::new(net, config)?;
        let mut sampler = BatchSampler::new(&split.train, s.context, s.seed + 17 * layers as u64);
        recorder.start_series(&format!("{layers}-layer-"));
        let last_loss = std::cell::Cell::new(f64::NAN);
        let bar = progress::bar(s.steps, &format!("{layers}-layer"));
        let t0 = Instant::now();
        trainer
            .run_stage(
                s.steps,
                &schedule,
                || {
                    let b = sampler.next_batch(s.batch_size);
                    (b.inputs, b.targets)
                },
                |step, net| {
                    let heldout = [0usize, 1, 2].map(|k| {
                        mean_loss(net, &windows.inputs, &windows.targets, k).unwrap_or(f64::NAN)
                    });
                    let model = net.to_transformer()?;
                    let record = Record {
                        layers,
                        step,
                        train_loss: last_loss.get(),
                        heldout_loss: heldout,
                        ngram_scores: [0, 1, 2].map(|k| ngram_score(heldout[k], ngram_losses[k])),
                    };
                    recorder.record(
                        model,
                        step,
                        Some(format!("{layers}-layer")),
                        format!("step {step}"),
                        record,
                    )
                },
                |_, st| {
                    last_loss.set(f64::from(st.loss));
                    bar.inc(1);
                    bar.set_message(format!("loss {:.3}", st.loss));
                },
            )
            .context("training")?;
        bar.finish_and_clear();
        let seconds_training = t0.elapsed().as_secs_f64();
        let Trajectory {
            models,
            records: own,
            ..
        } = recorder.take_series();

        // Matrices over checkpoints.
        let t1 = Instant::now();
        let n = models.len();
        let pairs = (n * (n + 1) / 2) as u64;
        let bar = progress::bar(n as u64 + 4 * pairs, &format!("{layers}-layer matrices"));
        let geometry = Arc::new(SequenceGeometry::new(&shape, s.gaussian_positions)?);
        let prepared: Vec<SequencePrepared> = models
            .par_iter()
            .map(|m| {
                let p = SequencePrepared::new(m, geometry.clone());
                bar.inc(1);
                p
            })
            .collect::<Result<_, _>>()?;
        let exactness = prepared[0].exactness().describe();
        let gaussian = GramMatrices::compute(&prepared, &|| bar.inc(1))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .cosine_total()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let text_logits: Vec<Vec<f64>> = models
            .par_iter()
            .map(|m| flat_logits(&text_inputs, |x| m.forward(x.as_ref())))
            .collect::<Result<_>>()?;
        let gauss_logits: Vec<Vec<f64>> = models
            .par_iter()
            .map(|m| flat_logits(&gaussian_seqs, |x| m.forward(x.as_ref())))
            .collect::<Result<_>>()?;
        // Residual-stream inputs shared by all checkpoints: the held-out
        // windows through the final checkpoint's embedding. Each checkpoint
        // maps them through its own blocks and unembedding.
        let reference = models.last().expect("at least four checkpoints");
        let residual_inputs: Vec<Mat<f64>> = text_inputs
            .iter()
            .map(|x| reference.embed(x.as_ref()))
            .collect();
        let residual_logits: Vec<Vec<f64>> = models
            .par_iter()
            .map(|m| flat_logits(&residual_inputs, |r| m.forward_residual(r.as_ref())))
            .collect::<Result<_>>()?;
        let params: Vec<Vec<f64>> = models.iter().map(parameter_vector).collect();
        let pick = |v: &[Vec<f64>]| -> Result<Mat<f64>> {
            let index: Vec<usize> = (0..v.len()).collect();
            let m = pairwise_values(
                &index,
                |&i, &j| Ok(vec![flat_cosine(&v[i], &v[j])]),
                &|| bar.inc(1),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(m.into_iter().next().expect("one matrix"))
        };
        let text_cos = pick(&text_logits)?;
        let gauss_cos = pick(&gauss_logits)?;
        let residual_cos = pick(&residual_logits)?;
        let weight_cos = pick(&params)?;
        bar.finish_and_clear();
        let labels: Vec<String> = own.iter().map(|r| format!("step {}", r.step)).collect();
        let steps: Vec<u64> = own.iter().map(|r| r.step).collect();
        let named = [
            ("gaussian", &gaussian),
            ("output-cosine-text", &text_cos),
            ("output-cosine-gaussian", &gauss_cos),
            ("output-cosine-residual", &residual_cos),
            ("matrix-cosine", &weight_cos),
        ];
        for (name, m) in &named {
            run.write_matrix(&format!("{layers}-layer-{name}"), &labels, m)?;
        }
        let metrics: Vec<MetricSummary> =
            named.iter().map(|(k, m)| summarise(k, m, &steps)).collect();

        // Figure (EXPERIMENTS §4, six panels): n-gram scores and the five
        // similarity matrices; the losses get a panel of their own.
        let xs: Vec<f64> = steps.iter().map(|&t| t.max(1) as f64).collect();
        let loss = lines(
            "held-out loss (nats) vs n-gram models",
            "step (log)",
            "cross-entropy",
            vec![
                series(
                    "model (t ≥ 2)",
                    &xs,
                    own.iter().map(|r| r.heldout_loss[2]),
                    (31, 119, 180),
                ),
                series(
                    "2-gram",
                    &xs,
                    xs.iter().map(|_| ngram_losses[0]),
                    (255, 127, 14),
                ),
                series(
                    "3-gram",
                    &xs,
                    xs.iter().map(|_| ngram_losses[1]),
                    (44, 160, 44),
                ),
                series(
                    "4-gram",
                    &xs,
                    xs.iter().map(|_| ngram_losses[2]),
                    (214, 39, 40),
                ),
            ],
            true,
            None,
            vec![],
        );
        let scores = lines(
            "n-gram scores (model loss / n-gram loss)",
            "step (log)",
            "score",
            [2, 3, 4]
                .iter()
                .enumerate()
                .map(|(k, nn)| {
                    series(
                        &format!("{nn}-gram"),
                        &xs,
                        own.iter().map(|r| r.ngram_scores[k]),
                        [(255, 127, 14), (44, 160, 44), (214, 39, 40)][k],
                    )
                })
                .collect(),
            true,
            None,
            vec![],
        );
        let heat = |title: String, m: &Mat<f64>| similarity_heatmap(title, m, &[], &[]);
        tensim_plot::render_panel(
            &loss,
            &run.path(&format!("figures/{layers}-layer-loss.png")),
            (700, 520),
        )?;
        let panels: Vec<(&str, Panel)> = vec![
            ("ngram", scores),
            (
                "gaussian",
                heat(
                    "gaussian (uncentred, moments through attention)".into(),
                    &gaussian,
                ),
            ),
            (
                "text",
                heat("output cosine on held-out text".into(), &text_cos),
            ),
            (
                "gaussian-output",
                heat("output cosine on Gaussian inputs".into(), &gauss_cos),
            ),
            (
                "residual",
                heat(
                    "output cosine on residual-stream activations".into(),
                    &residual_cos,
                ),
            ),
            (
                "matrix",
                heat("matrix cosine (all parameters)".into(), &weight_cos),
            ),
        ];
        for (name, panel) in &panels {
            tensim_plot::render_panel(
                panel,
                &run.path(&format!("figures/{layers}-layer-{name}.png")),
                (700, 520),
            )?;
        }
        let grid: Vec<Panel> = panels.into_iter().map(|p| p.1).collect();
        tensim_plot::render_figure(
            &grid,
            2,
            3,
            (700, 520),
            &run.path(&format!("figures/{layers}-layer.png")),
        )?;
        let last = own.last().expect("checkpoints");
        outcomes.push(ModelOutcome {
            layers,
            checkpoints: n,
            final_heldout_loss: last.heldout_loss[0],
            final_ngram_scores: last.ngram_scores,
            ngram_losses,
            gaussian_exactness: exactness,
            metrics,
            seconds_training,
            seconds_matrices: t1.elapsed().as_secs_f64(),
            steps_per_second: s.steps as f64 / seconds_training,
        });
    }
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        models: outcomes,
        seconds_total: started.elapsed().as_secs_f64(),
    };
    run.write_text("report.md", &report(&outcome, &s, opts.quick))?;
    Ok(outcome)
}

fn report(o: &Outcome, s: &Settings, quick: bool) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# n-gram language models with bilinear attention\n");
    let _ = writeln!(
        md,
        "Corpus: {}, vocabulary {} characters, context {}. Transformers of bilinear components \
         (d_model {}, {} heads × {}, MLP hidden {}, residual scale {}, causal mask, rotary), \
         {} and {} layer(s); AdamW lr {} (warm-up, cosine decay), weight decay {}, batch {}, \
         {} steps{}, {} log-spaced checkpoints. Wall time {:.0} s.\n",
        s.corpus,
        s.vocab,
        s.context,
        s.d_model,
        s.heads,
        s.head_dim,
        s.mlp_hidden,
        s.residual_scale,
        s.layers[0],
        s.layers[1],
        s.learning_rate,
        s.weight_decay,
        s.batch_size,
        s.steps,
        if quick { " (**--quick**)" } else { "" },
        s.checkpoints,
        o.seconds_total
    );
    let _ = writeln!(
        md,
        "**n-gram score** (EXPERIMENTS §4, after the tensor-similarity paper): the model's held-out \
         cross-entropy divided by that of an interpolated Kneser–Ney n-gram model fitted to the \
         training text (Chen & Goodman 1999), both on the same held-out windows and on positions \
         with n−1 tokens of context inside the window. Below 1: the model beats the n-gram model.\n"
    );
    let _ = writeln!(
        md,
        "The similarity `gaussian` is the exact Gaussian functional similarity (uncentred, MATH.md §3) \
         through attention on {} independent N(0, I) input positions. Output cosines flatten all \
         samples × positions × vocabulary into one cosine: on {} held-out windows (one-hot tokens), on {} \
         Gaussian sequences (N(0, I) in token space), and on residual-stream activations (the same \
         held-out windows through the final checkpoint's embedding, fed to every checkpoint's blocks \
         and unembedding, so all checkpoints see one input set).\n",
        s.gaussian_positions, s.gaussian_samples, s.gaussian_samples
    );
    for m in &o.models {
        let _ = writeln!(md, "## {} layer(s)\n", m.layers);
        let _ = writeln!(
            md,
            "Final held-out loss {:.3} nats; n-gram losses 2/3/4: {:.3} / {:.3} / {:.3}; final scores \
             2/3/4-gram: {:.3} / {:.3} / {:.3}. Training {:.0} s ({:.1} steps/s), matrices and figures \
             {:.0} s. Gaussian metric: {}.\n",
            m.final_heldout_loss,
            m.ngram_losses[0],
            m.ngram_losses[1],
            m.ngram_losses[2],
            m.final_ngram_scores[0],
            m.final_ngram_scores[1],
            m.final_ngram_scores[2],
            m.seconds_training,
            m.steps_per_second,
            m.seconds_matrices,
            m.gaussian_exactness
        );
        let _ = writeln!(
            md,
            "| metric | mean off-diagonal | first vs last | mean consecutive | best two-block split (contrast) |\n|---|---|---|---|---|"
        );
        for x in &m.metrics {
            let split = match (x.best_split_step, x.best_split_contrast) {
                (Some(st), Some(c)) => format!("step {st} ({c:.3})"),
                _ => "—".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {:.3} | {} |",
                x.metric, x.mean_off_diagonal, x.first_vs_last, x.mean_consecutive, split
            );
        }
        let _ = writeln!(
            md,
            "\n![{} layer(s)](figures/{}-layer.png)\n\n![{} layer(s), losses](figures/{}-layer-loss.png)\n",
            m.layers, m.layers, m.layers, m.layers
        );
    }
    md
}
