//! `tensim experiment grokking` (EXPERIMENTS §3): modular addition with a
//! bilinear layer; train/validation curves, the Fourier frequencies read from
//! the weights at every checkpoint, and tensor similarity across checkpoints.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;
use tensim_core::blocks::rank_splits;
use tensim_core::frequencies::frequency_marginal;
use tensim_core::{Architecture, BilinearForm, LayerShape, Mat, Model};
use tensim_plot::{ColourScale, Heatmap, Panel};
use tensim_train::evaluate::evaluate;
use tensim_train::trainer::Shuffler;
use tensim_train::{Batch, Network, Schedule, TrainConfig, Trainer};

use crate::figures::{lines, row_major, series};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::run_dir::RunDir;
use crate::similarity_suite as suite;

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
    modulus: usize,
    train_fraction: f64,
    hidden: usize,
    steps: u64,
    checkpoints: usize,
    schedule_exponent: f64,
    batch_size: usize,
    learning_rate: f64,
    weight_decay: f64,
    eigenvectors: usize,
    seed: u64,
}

#[derive(Clone, Debug, Serialize)]
struct Record {
    step: u64,
    train_loss: f64,
    train_accuracy: f64,
    validation_loss: f64,
    validation_accuracy: f64,
}

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

/// `one-hot(a) ⊕ one-hot(b)` rows and `(a + b) mod p` labels for the given pairs.
fn encode(pairs: &[(usize, usize)], p: usize) -> (Vec<f32>, Vec<u32>) {
    let mut x = vec![0.0f32; pairs.len() * 2 * p];
    for (row, &(a, b)) in pairs.iter().enumerate() {
        x[row * 2 * p + a] = 1.0;
        x[row * 2 * p + p + b] = 1.0;
    }
    (
        x,
        pairs.iter().map(|&(a, b)| ((a + b) % p) as u32).collect(),
    )
}

fn first_crossing(records: &[Record], f: impl Fn(&Record) -> f64, level: f64) -> Option<u64> {
    records.iter().find(|r| f(r) >= level).map(|r| r.step)
}

pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let s = Settings {
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
    };
    let schedule = crate::checkpoint_steps(
        Schedule::Power {
            count: s.checkpoints,
            exponent: s.schedule_exponent,
        },
        s.steps,
    )?;
    let run = RunDir::create(&opts.out, opts.force)?;
    run.write_text("settings.json", &serde_json::to_string_pretty(&s)?)?;
    let p = s.modulus;
    let mut pairs: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    pairs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(s.seed));
    let n_train = (pairs.len() as f64 * s.train_fraction).round() as usize;
    let (train_x, train_y) = encode(&pairs[..n_train], p);
    let (val_x, val_y) = encode(&pairs[n_train..], p);
    let dim = 2 * p;

    let arch = Architecture {
        layers: vec![LayerShape::Bilinear {
            input: dim,
            hidden: s.hidden,
            output: p,
            left_bias: false,
            right_bias: false,
            down_bias: false,
            residual_scale: 1.0,
        }],
    };
    let device = tensim_train::default_device();
    let config = TrainConfig {
        learning_rate: s.learning_rate,
        weight_decay: s.weight_decay,
        batch_size: s.batch_size,
        input_noise: 0.0,
        cosine_decay: false,
        seed: s.seed,
    };
    let mut trainer = Trainer::new(Network::init(&arch, s.seed, &device)?, config)?;
    let mut recorder: Recorder<Model, Record> = Recorder::new(&run);
    let mut shuffler = Shuffler::new(n_train);
    let bar = progress::bar(s.steps, "training");
    let train_start = Instant::now();
    trainer
        .run_stage(
            s.steps,
            &schedule,
            |rng| {
                let idx = shuffler.next_indices(s.batch_size, rng);
                let mut inputs = Vec::with_capacity(idx.len() * dim);
                for &i in &idx {
                    inputs.extend_from_slice(&train_x[i * dim..(i + 1) * dim]);
                }
                Batch {
                    inputs,
                    labels: idx.iter().map(|&i| train_y[i]).collect(),
                    dim,
                }
            },
            |step, net| {
                let train = evaluate(net, &train_x, &train_y, dim)?;
                let val = evaluate(net, &val_x, &val_y, dim)?;
                let model = net.to_model()?;
                let record = Record {
                    step,
                    train_loss: train.loss,
                    train_accuracy: train.accuracy,
                    validation_loss: val.loss,
                    validation_accuracy: val.accuracy,
                };
                recorder.record(model, step, None, format!("step {step}"), record)
            },
            |_, st| {
                bar.inc(1);
                bar.set_message(format!("loss {:.3}", st.loss));
            },
        )
        .context("training")?;
    bar.finish_and_clear();
    let seconds_training = train_start.elapsed().as_secs_f64();
    let Trajectory {
        models, records, ..
    } = recorder.take_series();

    // Analysis: frequencies from weights and tensor similarity.
    let analysis_start = Instant::now();
    let n = models.len();
    let bar = progress::bar(n as u64 + (n * (n + 1) / 2) as u64, "analysis");
    let spectra: Vec<Vec<f64>> = models
        .par_iter()
        .map(|m| {
            let spectrum = frequency_marginal(&BilinearForm::fold(m)?, p, s.eigenvectors);
            bar.inc(1);
            spectrum
        })
        .collect::<Result<_, _>>()?;
    let (tensor, _) = suite::tensor(&models, &bar)?;
    bar.finish_and_clear();
    let labels: Vec<String> = records.iter().map(|r| format!("step {}", r.step)).collect();
    run.write_matrix("tensor", &labels, &tensor.total)?;
    let bins = p / 2 + 1;
    let freq_matrix = Mat::from_fn(bins, n, |k, i| spectra[i][k]);
    let freq_labels: Vec<String> = (0..bins).map(|k| format!("frequency {k}")).collect();
    tensim_io::write_matrix(
        &run.path("matrices/frequencies.csv"),
        &labels,
        &freq_matrix.transpose().to_owned(),
    )
    .context("writing the frequency table")?;
    let _ = freq_labels;
    let splits = rank_splits(tensor.total.as_ref(), 2);
    let best = *splits.first().with_context(|| {
        format!("only {n} checkpoints: too few to look for a phase change; train for more --steps")
    })?;
    let last = spectra.last().expect("checkpoints");
    let mut dominant: Vec<(usize, f64)> = last.iter().copied().enumerate().collect();
    dominant.sort_by(|a, b| b.1.total_cmp(&a.1));
    dominant.truncate(5);

    // Figure: accuracy, loss, similarity, frequencies.
    let xs: Vec<f64> = records.iter().map(|r| (r.step.max(1)) as f64).collect();
    let val05 = first_crossing(&records, |r| r.validation_accuracy, 0.5);
    let vlines: Vec<(f64, String)> = val05
        .map(|st| vec![(st.max(1) as f64, "validation 50%".to_string())])
        .unwrap_or_default();
    let acc = lines(
        "accuracy",
        "step (log)",
        "accuracy",
        vec![
            series(
                "train",
                &xs,
                records.iter().map(|r| r.train_accuracy),
                (31, 119, 180),
            ),
            series(
                "validation",
                &xs,
                records.iter().map(|r| r.validation_accuracy),
                (214, 39, 40),
            ),
        ],
        true,
        Some((0.0, 1.0)),
        vlines.clone(),
    );
    let loss = lines(
        "loss",
        "step (log)",
        "log10 cross-entropy",
        vec![
            series(
                "train",
                &xs,
                records.iter().map(|r| r.train_loss.max(1e-8).log10()),
                (31, 119, 180),
            ),
            series(
                "validation",
                &xs,
                records.iter().map(|r| r.validation_loss.max(1e-8).log10()),
                (214, 39, 40),
            ),
        ],
        true,
        None,
        vlines,
    );
    let ticks: Vec<(usize, String)> = (0..n)
        .step_by((n / 8).max(1))
        .map(|i| (i, records[i].step.to_string()))
        .collect();
    let sim = Panel::Heatmap(Heatmap {
        title: "tensor similarity (weight space)".into(),
        rows: n,
        cols: n,
        values: row_major(&tensor.total),
        scale: ColourScale::Diverging,
        x_label: "checkpoint step (power-spaced)".into(),
        y_label: "checkpoint step".into(),
        boundaries: vec![best.index],
        block_labels: vec![],
        x_ticks: ticks.clone(),
        y_ticks: ticks.clone(),
    });
    let freq = Panel::Heatmap(Heatmap {
        title: "frequencies read from the weights".into(),
        rows: bins,
        cols: n,
        values: row_major(&freq_matrix),
        scale: ColourScale::Sequential,
        x_label: "checkpoint step (power-spaced)".into(),
        y_label: "frequency".into(),
        boundaries: vec![],
        block_labels: vec![],
        x_ticks: ticks,
        y_ticks: (0..bins).step_by(8).map(|k| (k, k.to_string())).collect(),
    });
    let panels = [
        ("accuracy", acc),
        ("loss", loss),
        ("tensor", sim),
        ("frequencies", freq),
    ];
    for (name, panel) in &panels {
        tensim_plot::render_panel(
            panel,
            &run.path(&format!("figures/panel-{name}.png")),
            (900, 520),
        )?;
    }
    let grid: Vec<Panel> = panels.into_iter().map(|p| p.1).collect();
    tensim_plot::render_figure(&grid, 4, 1, (900, 520), &run.path("figures/grokking.png"))?;
    let seconds_analysis = analysis_start.elapsed().as_secs_f64();

    let last_record = records.last().expect("records");
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        checkpoints: n,
        final_train_accuracy: last_record.train_accuracy,
        final_validation_accuracy: last_record.validation_accuracy,
        train_crosses_099: first_crossing(&records, |r| r.train_accuracy, 0.99),
        validation_crosses_05: val05,
        validation_crosses_099: first_crossing(&records, |r| r.validation_accuracy, 0.99),
        dominant_frequencies: dominant,
        detected_phase_change_step: records[best.index].step,
        phase_change_contrast: best.contrast,
        seconds_training,
        seconds_analysis,
        seconds_total: started.elapsed().as_secs_f64(),
        steps_per_second: s.steps as f64 / seconds_training,
    };
    run.write_text("report.md", &report(&outcome, &s, opts.quick, &records))?;
    Ok(outcome)
}

fn report(o: &Outcome, s: &Settings, quick: bool, records: &[Record]) -> String {
    let mut md = String::new();
    let step =
        |x: Option<u64>| x.map_or_else(|| "not reached".to_string(), |v| format!("step {v}"));
    let _ = writeln!(
        md,
        "# Grokking modular addition: the phase change seen from the weights\n"
    );
    let _ = writeln!(
        md,
        "Task `(a + b) mod {p}`, input one-hot(a) ⊕ one-hot(b) ({} dims), {:.0}% of the {} pairs for \
         training; model `Bilinear({} → {}, no bias)` then `Linear({} → {p})` (one bilinear form). AdamW lr {}, \
         weight decay {}, batch {}, {} steps{}; {} checkpoints at `int(steps·(i/99)^5)`. \
         Similarity: `tensor` (weight space, MATH.md §2). Wall time {:.0} s ({:.0} steps/s in training).\n",
        2 * s.modulus,
        100.0 * s.train_fraction,
        s.modulus * s.modulus,
        2 * s.modulus,
        s.hidden,
        s.hidden,
        s.learning_rate,
        s.weight_decay,
        s.batch_size,
        s.steps,
        if quick { " (**--quick**)" } else { "" },
        o.checkpoints,
        o.seconds_total,
        o.steps_per_second,
        p = s.modulus
    );
    let _ = writeln!(md, "## Learning curves\n");
    let _ = writeln!(md, "| event | this run | paper |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| train accuracy ≥ 0.99 | {} | ~1k steps |",
        step(o.train_crosses_099)
    );
    let _ = writeln!(
        md,
        "| validation accuracy ≥ 0.5 | {} | — |",
        step(o.validation_crosses_05)
    );
    let _ = writeln!(
        md,
        "| validation accuracy ≥ 0.99 | {} | near 10k steps |",
        step(o.validation_crosses_099)
    );
    let _ = writeln!(
        md,
        "| final train / validation accuracy | {:.3} / {:.3} | 1.0 / 1.0 |\n",
        o.final_train_accuracy, o.final_validation_accuracy
    );
    let _ = writeln!(md, "## Frequencies read from the weights\n");
    let _ = writeln!(
        md,
        "Per class: the symmetrised 226×226 interaction matrix, its 4 eigenvectors of largest |λ|, \
         |DFT| of their a-half weighted by |λ|, normalised per class and averaged over classes. \
         Dominant frequencies at the last checkpoint:\n"
    );
    let _ = writeln!(md, "| frequency | share |\n|---|---|");
    for (k, v) in &o.dominant_frequencies {
        let _ = writeln!(md, "| {k} | {v:.3} |");
    }
    let _ = writeln!(md, "\n## Phase change in the similarity matrix\n");
    let grok = o.validation_crosses_05;
    let _ = writeln!(
        md,
        "The split of the checkpoint sequence that maximises (within-block − across-block) tensor \
         similarity starts its second block at **step {}** (contrast {:.3}). Validation accuracy first \
         reaches 0.5 at {}{}.\n",
        o.detected_phase_change_step,
        o.phase_change_contrast,
        step(grok),
        match grok {
            Some(g) => {
                let ratio = (o.detected_phase_change_step.max(1) as f64 / g.max(1) as f64).log10().abs();
                format!(
                    "; the detected boundary is within a factor {:.1} of it on the log-step axis ({})",
                    10f64.powf(ratio),
                    if ratio < 0.5 { "a phase change near the grokking step" } else { "not close to the grokking step" }
                )
            }
            None => String::new(),
        }
    );
    let _ = writeln!(md, "## Figure\n\n![grokking](figures/grokking.png)\n");
    let _ = writeln!(md, "Rows: accuracy (log step); log10 loss; tensor similarity (black line: detected boundary); frequency × checkpoint.\n");
    let _ = writeln!(
        md,
        "## Timing\n\n| stage | seconds |\n|---|---|\n| training (incl. checkpoint evaluation) | {:.1} |\n| frequencies + similarity + figures | {:.1} |\n| total | {:.1} |\n",
        o.seconds_training, o.seconds_analysis, o.seconds_total
    );
    let _ = writeln!(
        md,
        "Checkpoints: {} (first step {}, last step {}).",
        records.len(),
        records[0].step,
        records[records.len() - 1].step
    );
    md
}
