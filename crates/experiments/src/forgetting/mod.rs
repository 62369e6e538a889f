//! `tensim experiment forgetting` (EXPERIMENTS §2): a DeepMLP trained through
//! a class-incremental curriculum; Gaussian functional similarity (moment
//! propagation), its ten class slices, CKA and matrix cosine over all
//! checkpoints; similarity of each stage's update to the "add 9" update.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use tensim_core::blocks::block_mean;
use tensim_core::{Architecture, LayerShape, Mat, Model};
use tensim_data::ImageSet;
use tensim_train::curriculum::class_incremental;
use tensim_train::evaluate::predictions;
use tensim_train::trainer::Shuffler;
use tensim_train::{Batch, Network, Schedule, TrainConfig, Trainer};

use crate::figures::{lines, series, similarity_heatmap, PALETTE};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::run_dir::RunDir;
use crate::similarity_suite as suite;

/// What the caller chooses (the CLI's flags).
pub struct Options {
    pub out: PathBuf,
    pub force: bool,
    pub quick: bool,
    pub epochs: Option<f64>,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize)]
struct Settings {
    epochs_per_stage: f64,
    batch_size: usize,
    learning_rate: f64,
    weight_decay: f64,
    checkpoint_every: u64,
    embed: usize,
    hidden: usize,
    cka_images: usize,
    train_images: Option<usize>,
    seed: u64,
}

#[derive(Clone, Debug, Serialize)]
struct Record {
    step: u64,
    stage: usize,
    stage_name: String,
    test_accuracy: f64,
    per_digit_accuracy: Vec<f64>,
}

#[derive(Serialize)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub checkpoints: usize,
    pub stage_names: Vec<String>,
    /// Mean Gaussian similarity between the checkpoints of two stages.
    pub stage_similarity: Vec<Vec<f64>>,
    pub remove9_vs_add8: f64,
    pub remove9_vs_add9: f64,
    pub readd9_vs_add9: f64,
    pub readd9_vs_add8: f64,
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

fn labels_u32(set: &ImageSet) -> Vec<u32> {
    set.labels.iter().map(|&l| u32::from(l)).collect()
}

pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let data = tensim_data::load_dataset("mnist", None)?;
    let run = RunDir::create(&opts.out, opts.force)?;
    let s = Settings {
        epochs_per_stage: opts.epochs.unwrap_or(if opts.quick { 0.25 } else { 5.0 }),
        batch_size: 248,
        learning_rate: 1e-3,
        weight_decay: 0.5,
        checkpoint_every: if opts.quick { 25 } else { 50 },
        embed: 128,
        hidden: 256,
        cka_images: if opts.quick { 500 } else { 2000 },
        train_images: if opts.quick { Some(12_000) } else { None },
        seed: opts.seed,
    };
    run.write_text("settings.json", &serde_json::to_string_pretty(&s)?)?;
    let train_all = match s.train_images {
        Some(n) => data.train.first(n),
        None => data.train.clone(),
    };
    let dim = train_all.dim();
    let arch = Architecture {
        layers: vec![
            LayerShape::Linear {
                input: dim,
                output: s.embed,
                bias: false,
            },
            LayerShape::Bilinear {
                input: s.embed,
                hidden: s.hidden,
                output: s.embed,
                left_bias: false,
                right_bias: false,
                down_bias: false,
                residual_scale: 1.0,
            },
            LayerShape::Linear {
                input: s.embed,
                output: 10,
                bias: false,
            },
        ],
    };
    let device = tensim_train::default_device();
    let config = TrainConfig {
        learning_rate: s.learning_rate,
        weight_decay: s.weight_decay,
        batch_size: s.batch_size,
        input_noise: 0.0,
        cosine_decay: true,
        seed: s.seed,
    };
    let mut trainer = Trainer::new(Network::init(&arch, s.seed, &device)?, config)?;
    let stages = class_incremental();
    let stage_sets: Vec<ImageSet> = stages
        .iter()
        .map(|st| train_all.with_classes(&st.classes))
        .collect();
    let stage_steps: Vec<u64> = stage_sets
        .iter()
        .map(|set| {
            ((set.len() as f64 * s.epochs_per_stage / s.batch_size as f64).ceil() as u64).max(1)
        })
        .collect();
    let total: u64 = stage_steps.iter().sum();
    let test_labels = labels_u32(&data.test);
    let digit_counts: Vec<usize> = (0..10u32)
        .map(|d| test_labels.iter().filter(|&&l| l == d).count())
        .collect();

    let mut recorder: Recorder<Model, Record> = Recorder::new(&run);
    let mut stage_first: Vec<usize> = Vec::new();
    let mut recorded = 0usize;
    let bar = progress::bar(total, "training");
    let train_start = Instant::now();
    let mut offset = 0u64;
    for (k, (stage, set)) in stages.iter().zip(&stage_sets).enumerate() {
        let steps = stage_steps[k];
        // Checkpoints every `checkpoint_every` batches within the stage, and at its end.
        let mut schedule: Vec<u64> = Schedule::Every(s.checkpoint_every)
            .steps(steps)?
            .into_iter()
            .map(|t| offset + t)
            .collect();
        if k > 0 {
            schedule.retain(|&t| t != offset); // the previous stage's last checkpoint is this one's start
        }
        schedule.push(offset + steps);
        stage_first.push(recorded);
        let mut shuffler = Shuffler::new(set.len());
        let mut sample = |rng: &mut rand::rngs::StdRng| -> Batch {
            let idx = shuffler.next_indices(s.batch_size, rng);
            let mut inputs = Vec::with_capacity(idx.len() * dim);
            for &i in &idx {
                inputs.extend_from_slice(set.image(i));
            }
            Batch {
                inputs,
                labels: idx.iter().map(|&i| u32::from(set.labels[i])).collect(),
                dim,
            }
        };
        let mut on_checkpoint = |step: u64, net: &Network| -> tensim_train::Result<()> {
            let pred = predictions(net, &data.test.images, dim)?;
            let mut hits = [0usize; 10];
            for (p, l) in pred.iter().zip(&test_labels) {
                if p == l {
                    hits[*l as usize] += 1;
                }
            }
            let model = net.to_model()?;
            let record = Record {
                step,
                stage: k,
                stage_name: stage.name.clone(),
                test_accuracy: hits.iter().sum::<usize>() as f64 / test_labels.len() as f64,
                per_digit_accuracy: (0..10)
                    .map(|d| hits[d] as f64 / digit_counts[d].max(1) as f64)
                    .collect(),
            };
            recorded += 1;
            recorder.record(
                model,
                step,
                Some(stage.name.clone()),
                format!("{} @{step}", stage.name),
                record,
            )
        };
        trainer
            .run_stage(
                steps,
                &schedule,
                &mut sample,
                &mut on_checkpoint,
                |_, st| {
                    bar.inc(1);
                    bar.set_message(format!("{} loss {:.3}", stage.name, st.loss));
                },
            )
            .with_context(|| format!("training stage {}", stage.name))?;
        offset += steps;
    }
    bar.finish_and_clear();
    let seconds_training = train_start.elapsed().as_secs_f64();
    let Trajectory {
        models, records, ..
    } = recorder.take_series();

    // Matrices.
    let matrices_start = Instant::now();
    let n = models.len();
    let pairs = (n * (n + 1) / 2) as u64;
    let bar = progress::bar(pairs * 3, "matrices");
    let (gaussian, gram) = suite::gaussian(&models, &bar)?;
    let weights = suite::matrix_cosine(&models, &bar)?;
    let cka_set = data.test.first(s.cka_images);
    let cka_x = Mat::from_fn(cka_set.len(), dim, |i, j| {
        f64::from(cka_set.images[i * dim + j])
    });
    let cka = suite::cka(&suite::outputs(&models, &cka_x)?, &bar)?;
    bar.finish_and_clear();
    let labels: Vec<String> = records
        .iter()
        .map(|r| format!("{} @{}", r.stage_name, r.step))
        .collect();
    run.write_matrix("gaussian", &labels, &gaussian.total)?;
    for (c, m) in gaussian.slices.iter().enumerate() {
        run.write_matrix(&format!("gaussian-class{c}"), &labels, m)?;
    }
    run.write_matrix("cka-logits", &labels, &cka)?;
    run.write_matrix("matrix-cosine", &labels, &weights)?;

    // Stage blocks: checkpoint ranges of each stage.
    let stage_range = |k: usize| stage_first[k]..stage_first.get(k + 1).copied().unwrap_or(n);
    let ns = stages.len();
    let stage_similarity: Vec<Vec<f64>> = (0..ns)
        .map(|a| {
            (0..ns)
                .map(|b| block_mean(gaussian.total.as_ref(), stage_range(a), stage_range(b)))
                .collect()
        })
        .collect();
    let idx = |name: &str| {
        stages
            .iter()
            .position(|st| st.name == name)
            .expect("known stage")
    };
    let (add8, add9, control, remove9, readd9) = (
        idx("add 8"),
        idx("add 9"),
        idx("control"),
        idx("remove 9"),
        idx("re-add 9"),
    );
    let mut remove9_class_change: Vec<(usize, f64)> = gaussian
        .slices
        .iter()
        .enumerate()
        .map(|(c, m)| {
            (
                c,
                1.0 - block_mean(m.as_ref(), stage_range(control), stage_range(remove9)),
            )
        })
        .collect();
    remove9_class_change.sort_by(|a, b| b.1.total_cmp(&a.1));
    // Each stage's update: the checkpoint before the stage (its start) to its last checkpoint.
    let stage_updates: Vec<(usize, usize)> = (0..ns)
        .map(|k| {
            let r = stage_range(k);
            (if k == 0 { r.start } else { r.start - 1 }, r.end - 1)
        })
        .collect();
    let all_outputs: Vec<usize> = (0..10).collect();
    let update_matrix = gram.update_similarity(&stage_updates, &all_outputs)?;
    let update_similarity_to_add9: Vec<(String, f64)> = (0..ns)
        .map(|k| (stages[k].name.clone(), update_matrix[(k, add9)]))
        .collect();
    let stage_names: Vec<String> = stages.iter().map(|st| st.name.clone()).collect();
    run.write_matrix("stage-updates", &stage_names, &update_matrix)?;
    let seconds_matrices = matrices_start.elapsed().as_secs_f64();

    // Figures.
    let figures_start = Instant::now();
    let boundaries: Vec<usize> = stage_first[1..].to_vec();
    let block_labels: Vec<(usize, String)> = stage_first
        .iter()
        .zip(&stages)
        .map(|(&i, st)| (i, st.name.clone()))
        .collect();
    let mut panels = vec![
        similarity_heatmap(
            "gaussian (uncentred, moments)".into(),
            &gaussian.total,
            &boundaries,
            &block_labels,
        ),
        similarity_heatmap(
            "linear CKA of logits".into(),
            &cka,
            &boundaries,
            &block_labels,
        ),
        similarity_heatmap("matrix cosine".into(), &weights, &boundaries, &block_labels),
    ];
    for (c, m) in gaussian.slices.iter().enumerate() {
        panels.push(similarity_heatmap(
            format!("gaussian, class {c} slice"),
            m,
            &boundaries,
            &block_labels,
        ));
    }
    for (k, p) in panels.iter().enumerate() {
        let name = match k {
            0 => "gaussian".to_string(),
            1 => "cka-logits".to_string(),
            2 => "matrix-cosine".to_string(),
            c => format!("gaussian-class{}", c - 3),
        };
        tensim_plot::render_panel(
            p,
            &run.path(&format!("figures/panel-{name}.png")),
            (640, 600),
        )?;
    }
    let global: Vec<_> = panels.into_iter().take(3).collect();
    tensim_plot::render_figure(
        &global,
        1,
        3,
        (640, 600),
        &run.path("figures/global-metrics.png"),
    )?;
    let slices: Vec<_> = gaussian
        .slices
        .iter()
        .enumerate()
        .map(|(c, m)| similarity_heatmap(format!("class {c} slice"), m, &boundaries, &[]))
        .collect();
    tensim_plot::render_figure(
        &slices,
        2,
        5,
        (440, 420),
        &run.path("figures/class-slices.png"),
    )?;
    let xs: Vec<f64> = records.iter().map(|r| r.step as f64).collect();
    let stage_lines: Vec<(f64, String)> = stage_first[1..]
        .iter()
        .zip(&stages[1..])
        .map(|(&i, st)| (records[i].step as f64, st.name.clone()))
        .collect();
    let digit_series = (0..10)
        .map(|d| {
            series(
                &format!("digit {d}"),
                &xs,
                records.iter().map(|r| r.per_digit_accuracy[d]),
                PALETTE[d],
            )
        })
        .collect();
    let acc = lines(
        "test accuracy per digit",
        "step",
        "accuracy",
        digit_series,
        false,
        Some((0.0, 1.0)),
        stage_lines,
    );
    tensim_plot::render_panel(
        &acc,
        &run.path("figures/per-digit-accuracy.png"),
        (1100, 520),
    )?;
    // The whole story in one figure: three global metrics, accuracy, stage
    // updates (row 1), then the ten class slices.
    let updates = tensim_plot::Panel::Heatmap(tensim_plot::Heatmap {
        title: "stage updates, gaussian".into(),
        rows: ns,
        cols: ns,
        values: crate::figures::row_major(&update_matrix),
        scale: tensim_plot::ColourScale::Diverging,
        x_label: "stage".into(),
        y_label: "stage".into(),
        boundaries: vec![],
        block_labels: vec![],
        x_ticks: stage_names
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.clone()))
            .collect(),
        y_ticks: stage_names
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.clone()))
            .collect(),
    });
    let mut story = global;
    story.push(acc);
    story.push(updates);
    story.extend(slices);
    tensim_plot::render_figure(
        &story,
        3,
        5,
        (520, 480),
        &run.path("figures/forgetting.png"),
    )?;
    let seconds_figures = figures_start.elapsed().as_secs_f64();

    let final_per_digit_accuracy = records.last().expect("records").per_digit_accuracy.clone();
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        checkpoints: n,
        stage_names: stage_names.clone(),
        remove9_vs_add8: stage_similarity[remove9][add8],
        remove9_vs_add9: stage_similarity[remove9][add9],
        readd9_vs_add9: stage_similarity[readd9][add9],
        readd9_vs_add8: stage_similarity[readd9][add8],
        stage_similarity,
        remove9_class_change,
        update_similarity_to_add9,
        final_per_digit_accuracy,
        seconds_training,
        seconds_matrices,
        seconds_figures,
        seconds_total: started.elapsed().as_secs_f64(),
    };
    run.write_text(
        "report.md",
        &report(&outcome, &s, opts.quick, &stage_steps, total),
    )?;
    Ok(outcome)
}

fn report(o: &Outcome, s: &Settings, quick: bool, stage_steps: &[u64], total: u64) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Class-incremental forgetting: which digit did the model forget?\n"
    );
    let _ = writeln!(
        md,
        "DeepMLP (embed 784→{}, bilinear MLP with {} hidden units, head →10; no bias, no residual) \
         trained on bundled MNIST through nine stages, each continuing from the last: {}. \
         {} epochs per stage (the paper used 20; fewer to fit the CPU budget){}; AdamW lr {}, weight decay {}, \
         batch {}, cosine decay within each stage. {} steps, {} checkpoints (every {} batches and at each stage end). \
         Wall time {:.0} s.\n",
        s.embed,
        s.hidden,
        o.stage_names.join(" → "),
        s.epochs_per_stage,
        if quick { " (**--quick**: reduced run on 12,000 training images)" } else { "" },
        s.learning_rate,
        s.weight_decay,
        s.batch_size,
        total,
        o.checkpoints,
        s.checkpoint_every,
        o.seconds_total
    );
    let _ = writeln!(
        md,
        "Similarity is the **Gaussian functional similarity** (`gaussian`: uncentred outputs on \
         N(0, I) pixel input, exact second-moment propagation; exact here since the model has one \
         bilinear layer, MATH.md §3).\n"
    );
    let _ = writeln!(md, "## Which stages resemble each other\n");
    let _ = writeln!(md, "Mean `gaussian` similarity between the checkpoints of two stages (diagonal: within a stage, off-diagonal pairs only):\n");
    let _ = write!(md, "| stage |");
    for name in &o.stage_names {
        let _ = write!(md, " {name} |");
    }
    let _ = writeln!(md, "\n|---|{}", "---|".repeat(o.stage_names.len()));
    for (a, row) in o.stage_similarity.iter().enumerate() {
        let _ = write!(md, "| {} |", o.stage_names[a]);
        for v in row {
            if v.is_finite() {
                let _ = write!(md, " {v:.3} |");
            } else {
                let _ = write!(md, " — |");
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "\n* \"remove 9\" vs \"add 8\" (before 9 existed): **{:.3}**; vs \"add 9\": {:.3} → remove 9 looks {} like add 8.\n\
         * \"re-add 9\" vs \"add 9\": **{:.3}**; vs \"add 8\": {:.3} → re-add 9 looks {} like add 9.\n",
        o.remove9_vs_add8,
        o.remove9_vs_add9,
        if o.remove9_vs_add8 > o.remove9_vs_add9 { "more" } else { "less" },
        o.readd9_vs_add9,
        o.readd9_vs_add8,
        if o.readd9_vs_add9 > o.readd9_vs_add8 { "more" } else { "less" },
    );
    let _ = writeln!(md, "## Which class slice changes most at \"remove 9\"\n");
    let _ = writeln!(md, "Change = 1 − mean class-slice similarity between the \"control\" and \"remove 9\" checkpoints:\n");
    let _ = writeln!(md, "| rank | class | change |\n|---|---|---|");
    for (i, (c, v)) in o.remove9_class_change.iter().enumerate() {
        let _ = writeln!(md, "| {} | {c} | {v:.4} |", i + 1);
    }
    let (top, second) = (o.remove9_class_change[0], o.remove9_class_change[1]);
    let _ = writeln!(
        md,
        "\n**Largest change: class {}** ({:.4}); runner-up class {} ({:.4}, ratio {:.1}×).\n",
        top.0,
        top.1,
        second.0,
        second.1,
        top.1 / second.1.max(1e-12)
    );
    let _ = writeln!(md, "## Updates compared with the \"add 9\" update\n");
    let _ = writeln!(
        md,
        "Similarity of each stage's update (weights at its end minus at its start) to the \"add 9\" \
         update, from the four pairwise inner products (`tensim diff`, MATH.md §2):\n"
    );
    let _ = writeln!(
        md,
        "| stage | steps | update similarity to add 9 |\n|---|---|---|"
    );
    for ((name, v), steps) in o.update_similarity_to_add9.iter().zip(stage_steps) {
        let _ = writeln!(md, "| {name} | {steps} | {v:.3} |");
    }
    let sim_of = |name: &str| {
        o.update_similarity_to_add9
            .iter()
            .find(|u| u.0 == name)
            .map_or(f64::NAN, |u| u.1)
    };
    let direction = |v: f64| {
        if v < -0.1 {
            "against"
        } else if v > 0.1 {
            "along"
        } else {
            "roughly orthogonal to"
        }
    };
    let (remove, readd) = (sim_of("remove 9"), sim_of("re-add 9"));
    let _ = writeln!(
        md,
        "\nThe \"remove 9\" update points {} the \"add 9\" update ({remove:.3}); the \"re-add 9\" update points {} it ({readd:.3}).",
        direction(remove),
        direction(readd)
    );
    let _ = writeln!(md, "\n## Final per-digit test accuracy\n");
    let _ = writeln!(
        md,
        "| digit | {} |\n|---|{}",
        (0..10)
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(10)
    );
    let _ = writeln!(
        md,
        "| accuracy | {} |\n",
        o.final_per_digit_accuracy
            .iter()
            .map(|a| format!("{:.3}", a))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "## Figures\n");
    let _ = writeln!(md, "All panels: ![forgetting](figures/forgetting.png)\n");
    let _ = writeln!(
        md,
        "Global metrics (stage boundaries as grid lines): ![global](figures/global-metrics.png)\n"
    );
    let _ = writeln!(md, "Class slices: ![slices](figures/class-slices.png)\n");
    let _ = writeln!(
        md,
        "Per-digit accuracy: ![accuracy](figures/per-digit-accuracy.png)\n"
    );
    let _ = writeln!(
        md,
        "## Timing\n\n| stage | seconds |\n|---|---|\n| training | {:.1} |\n| matrices | {:.1} |\n| figures | {:.2} |\n| total | {:.1} |",
        o.seconds_training, o.seconds_matrices, o.seconds_figures, o.seconds_total
    );
    md
}
