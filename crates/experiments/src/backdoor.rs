//! `tensim experiment backdoor` (EXPERIMENTS §1): train a bilinear classifier
//! on clean data (phase A), then poison 10% of each batch with a trigger that
//! relabels to 9 (phase B); compare all checkpoints with every metric and find
//! the attacked class from tensor similarity alone, without the trigger.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;
use tensim_core::blocks::{phase_delta, rank_by_change, rank_class_specific_splits, rank_splits};
use tensim_core::{Architecture, LayerShape, Mat, Model};
use tensim_data::{ImageSet, Split};
use tensim_plot::{ColourScale, Heatmap, ImagePanel, LinePlot, Panel, Series};
use tensim_train::evaluate::{evaluate, predictions};
use tensim_train::trainer::Shuffler;
use tensim_train::{Batch, Network, Schedule, TrainConfig, Trainer};

use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::run_dir::RunDir;
use crate::similarity_suite as suite;

/// What the caller chooses (the CLI's flags).
pub struct Options {
    pub out: PathBuf,
    pub force: bool,
    pub quick: bool,
    pub data: String,
    pub svhn_dir: Option<PathBuf>,
    pub seed: u64,
}

/// EXPERIMENTS §1 settings (the default) or the reduced `--quick` ones.
#[derive(Clone, Debug, Serialize)]
struct Settings {
    steps_clean: u64,
    steps_poisoned: u64,
    checkpoint_every: u64,
    batch_size: usize,
    learning_rate: f64,
    weight_decay: f64,
    input_noise: f32,
    poison_rate: f64,
    target_class: u8,
    hidden: usize,
    eval_images: usize,
    train_eval_images: Option<usize>,
    seed: u64,
    dataset: String,
}

impl Settings {
    fn new(quick: bool, seed: u64, dataset: &str) -> Self {
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

/// One checkpoint's line in `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
struct Record {
    step: u64,
    phase: &'static str,
    train_loss: f64,
    train_accuracy: f64,
    test_loss: f64,
    test_accuracy: f64,
    attack_success: f64,
}

fn gather(set: &ImageSet, indices: &[usize]) -> (Vec<f32>, Vec<u32>) {
    let dim = set.dim();
    let mut x = Vec::with_capacity(indices.len() * dim);
    for &i in indices {
        x.extend_from_slice(set.image(i));
    }
    (
        x,
        indices.iter().map(|&i| u32::from(set.labels[i])).collect(),
    )
}

fn stamped(set: &ImageSet, value: f32) -> Result<ImageSet> {
    let mut out = set.clone();
    let dim = set.dim();
    for chunk in out.images.chunks_mut(dim) {
        tensim_data::trigger::stamp_diamond(chunk, set.height, set.width, value)?;
    }
    Ok(out)
}

fn to_mat(set: &ImageSet) -> Mat<f64> {
    let dim = set.dim();
    Mat::from_fn(set.len(), dim, |i, j| f64::from(set.images[i * dim + j]))
}

fn labels_u32(set: &ImageSet) -> Vec<u32> {
    set.labels.iter().map(|&l| u32::from(l)).collect()
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

pub fn run(opts: &Options) -> Result<Outcome> {
    let started = Instant::now();
    let data: Split = tensim_data::load_dataset(&opts.data, opts.svhn_dir.as_deref())?;
    let s = Settings::new(opts.quick, opts.seed, &data.name);
    let trigger = tensim_data::trigger::trigger_value(&data.name);
    let target = s.target_class;
    let dim = data.train.dim();
    let classes = 10;

    // Evaluation sets.
    let train_eval = match s.train_eval_images {
        Some(n) => data.train.first(n),
        None => data.train.clone(),
    };
    let triggered_test = stamped(&data.test, trigger)?;
    let attack_indices: Vec<usize> = (0..data.test.len())
        .filter(|&i| data.test.labels[i] != target)
        .collect();
    let attack_set = triggered_test.subset(&attack_indices);
    let eval_clean = data.test.first(s.eval_images);
    let eval_triggered = stamped(&eval_clean, trigger)?;
    // Every input is checked above (the trigger fits, the data loaded): only now create the run.
    let run = RunDir::create(&opts.out, opts.force)?;
    run.write_text("settings.json", &serde_json::to_string_pretty(&s)?)?;

    // Training.
    let arch = Architecture {
        layers: vec![LayerShape::Bilinear {
            input: dim,
            hidden: s.hidden,
            output: classes,
            left_bias: false,
            right_bias: false,
            down_bias: false,
            residual_scale: 1.0,
        }],
    };
    let device = tensim_train::default_device();
    let net = Network::init(&arch, s.seed, &device)?;
    let config = TrainConfig {
        learning_rate: s.learning_rate,
        weight_decay: s.weight_decay,
        batch_size: s.batch_size,
        input_noise: s.input_noise,
        cosine_decay: false,
        seed: s.seed,
    };
    let mut trainer = Trainer::new(net, config)?;
    let total = s.steps_clean + s.steps_poisoned;
    let schedule = Schedule::Every(s.checkpoint_every).steps(total)?;
    let mut recorder: Recorder<Model, Record> = Recorder::new(&run);
    let bar = progress::bar(total, "training");
    let mut shuffler = Shuffler::new(data.train.len());
    let train_start = Instant::now();
    for (phase, steps, rate) in [
        ("A", s.steps_clean, 0.0),
        ("B", s.steps_poisoned, s.poison_rate),
    ] {
        let mut sample = |rng: &mut StdRng| -> Batch {
            let idx = shuffler.next_indices(s.batch_size, rng);
            let (mut inputs, mut labels) = gather(&data.train, &idx);
            if rate > 0.0 {
                for (k, label) in labels.iter_mut().enumerate() {
                    if rng.random_bool(rate) {
                        tensim_data::trigger::stamp_diamond(
                            &mut inputs[k * dim..(k + 1) * dim],
                            data.train.height,
                            data.train.width,
                            trigger,
                        )
                        .expect("trigger fits: checked on the test set");
                        *label = u32::from(target);
                    }
                }
            }
            Batch {
                inputs,
                labels,
                dim,
            }
        };
        let mut on_checkpoint = |step: u64, net: &Network| -> tensim_train::Result<()> {
            let train = evaluate(net, &train_eval.images, &labels_u32(&train_eval), dim)?;
            let test = evaluate(net, &data.test.images, &labels_u32(&data.test), dim)?;
            let hits = predictions(net, &attack_set.images, dim)?
                .iter()
                .filter(|&&p| p == u32::from(target))
                .count();
            let model = net.to_model()?;
            let phase_here = if step <= s.steps_clean { "A" } else { "B" };
            let record = Record {
                step,
                phase: phase_here,
                train_loss: train.loss,
                train_accuracy: train.accuracy,
                test_loss: test.loss,
                test_accuracy: test.accuracy,
                attack_success: hits as f64 / attack_set.len().max(1) as f64,
            };
            recorder.record(
                model,
                step,
                Some(phase_here.to_string()),
                format!("step {step}"),
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
                    bar.set_message(format!(
                        "phase {phase} loss {:.3} acc {:.2}",
                        st.loss, st.accuracy
                    ));
                },
            )
            .with_context(|| format!("training phase {phase}"))?;
    }
    bar.finish_and_clear();
    let seconds_training = train_start.elapsed().as_secs_f64();
    let Trajectory {
        models, records, ..
    } = recorder.take_series();

    // Matrices.
    let matrices_start = Instant::now();
    let n = models.len();
    let b_start = records.iter().filter(|r| r.phase == "A").count();
    let pairs = (n * (n + 1) / 2) as u64;
    let bar = progress::bar(pairs * 9, "matrices");
    let (tensor, _) = suite::tensor(&models, &bar)?;
    let weights = suite::matrix_cosine(&models, &bar)?;
    let clean_x = to_mat(&eval_clean);
    let trig_x = to_mat(&eval_triggered);
    let class_x = |c: u8| to_mat(&data.test.with_classes(&[c]));
    let union_x = {
        let (a, b) = (clean_x.as_ref(), trig_x.as_ref());
        Mat::from_fn(a.nrows() + b.nrows(), a.ncols(), |i, j| {
            if i < a.nrows() {
                a[(i, j)]
            } else {
                b[(i - a.nrows(), j)]
            }
        })
    };
    let out_clean = suite::outputs(&models, &clean_x)?;
    let output_sets: Vec<(&str, &str, Vec<Mat<f64>>)> = vec![
        ("output-clean", "output cosine, clean", out_clean.clone()),
        (
            "output-triggered",
            "output cosine, triggered inputs",
            suite::outputs(&models, &trig_x)?,
        ),
        (
            "output-class2",
            "output cosine, class 2",
            suite::outputs(&models, &class_x(2))?,
        ),
        (
            "output-class9",
            "output cosine, class 9",
            suite::outputs(&models, &class_x(9))?,
        ),
        (
            "output-union",
            "output cosine, clean ∪ triggered",
            suite::outputs(&models, &union_x)?,
        ),
    ];
    let mut named: Vec<(String, String, Mat<f64>)> = vec![
        (
            "tensor".into(),
            "tensor similarity (weight space)".into(),
            tensor.total.clone(),
        ),
        ("matrix-cosine".into(), "matrix cosine".into(), weights),
    ];
    for (key, name, outs) in &output_sets {
        named.push((
            key.to_string(),
            name.to_string(),
            suite::output_cosine(outs, &bar)?,
        ));
    }
    named.push((
        "cka-logits".into(),
        "linear CKA of logits, clean".into(),
        suite::cka(&out_clean, &bar)?,
    ));
    for (c, m) in tensor.slices.iter().enumerate() {
        named.push((
            format!("tensor-class{c}"),
            format!("tensor similarity, class {c} slice"),
            m.clone(),
        ));
    }
    bar.finish_and_clear();
    let labels: Vec<String> = records.iter().map(|r| format!("step {}", r.step)).collect();
    for (key, _, m) in &named {
        run.write_matrix(key, &labels, m)?;
    }
    let deltas: Vec<(String, f64)> = named
        .iter()
        .map(|(k, _, m)| (k.clone(), phase_delta(m.as_ref(), b_start)))
        .collect();
    let delta_of = |key: &str| deltas.iter().find(|d| d.0 == key).map_or(f64::NAN, |d| d.1);

    // Detection from tensor similarity alone: the boundary where one class
    // slice changed most beyond the others, then the classes ranked there.
    let splits = rank_splits(tensor.total.as_ref(), 2);
    let slice_refs: Vec<_> = tensor.slices.iter().map(|m| m.as_ref()).collect();
    let class_splits = rank_class_specific_splits(&slice_refs, 2);
    let best = class_splits[0];
    let ranked = rank_by_change(&slice_refs, best.index);
    let seconds_matrices = matrices_start.elapsed().as_secs_f64();

    // Figures.
    let figures_start = Instant::now();
    let final_model = models.last().expect("at least one checkpoint");
    let sample_index = (0..data.test.len())
        .find(|&i| data.test.labels[i] != target)
        .unwrap_or(0);
    let clean_img = data.test.image(sample_index).to_vec();
    let trig_img = triggered_test.image(sample_index).to_vec();
    let predict = |img: &[f32]| -> Result<usize> {
        let y = final_model.forward(Mat::from_fn(1, dim, |_, j| f64::from(img[j])).as_ref())?;
        Ok((0..classes).fold(0, |b, j| if y[(0, j)] > y[(0, b)] { j } else { b }))
    };
    let heat = |title: String, m: &Mat<f64>| -> Panel {
        Panel::Heatmap(Heatmap {
            title,
            rows: m.nrows(),
            cols: m.ncols(),
            values: (0..m.nrows())
                .flat_map(|i| (0..m.ncols()).map(move |j| (i, j)))
                .map(|(i, j)| m[(i, j)])
                .collect(),
            scale: ColourScale::Diverging,
            x_label: "checkpoint".into(),
            y_label: "checkpoint".into(),
            boundaries: vec![b_start],
            block_labels: vec![(0, "A: clean".into()), (b_start, "B".into())],
            x_ticks: vec![],
            y_ticks: vec![],
        })
    };
    let by_key = |key: &str| &named.iter().find(|x| x.0 == key).expect("computed above").2;
    let steps_x: Vec<f64> = records.iter().map(|r| r.step as f64).collect();
    let series = |name: &str, f: &dyn Fn(&Record) -> f64, colour| Series {
        name: name.into(),
        points: steps_x.iter().copied().zip(records.iter().map(f)).collect(),
        colour: Some(colour),
    };
    let curves = Panel::Lines(LinePlot {
        title: "accuracy and attack success".into(),
        x_label: "step".into(),
        y_label: "fraction".into(),
        series: vec![
            series("train accuracy", &|r| r.train_accuracy, (31, 119, 180)),
            series("test accuracy", &|r| r.test_accuracy, (44, 160, 44)),
            series("attack success", &|r| r.attack_success, (214, 39, 40)),
        ],
        log_x: false,
        y_range: Some((0.0, 1.0)),
        vlines: vec![(s.steps_clean as f64, "poisoning starts".into())],
    });
    let image = |title: String, pixels: Vec<f32>| {
        Panel::Image(ImagePanel {
            title,
            height: data.test.height,
            width: data.test.width,
            pixels,
        })
    };
    let panels = vec![
        (
            "clean-sample",
            image(
                format!("clean sample → predicted {}", predict(&clean_img)?),
                clean_img.clone(),
            ),
        ),
        ("curves", curves),
        (
            "matrix-cosine",
            heat(
                format!("matrix cosine  Δ={:.3}", delta_of("matrix-cosine")),
                by_key("matrix-cosine"),
            ),
        ),
        (
            "tensor",
            heat(
                format!("tensor (weight space)  Δ={:.3}", delta_of("tensor")),
                by_key("tensor"),
            ),
        ),
        (
            "triggered-sample",
            image(
                format!("triggered sample → predicted {}", predict(&trig_img)?),
                trig_img.clone(),
            ),
        ),
        (
            "output-triggered",
            heat(
                format!(
                    "output cos, triggered  Δ={:.3}",
                    delta_of("output-triggered")
                ),
                by_key("output-triggered"),
            ),
        ),
        (
            "output-class9",
            heat(
                format!("output cos, class 9  Δ={:.3}", delta_of("output-class9")),
                by_key("output-class9"),
            ),
        ),
        (
            "tensor-class9",
            heat(
                format!("tensor, class-9 slice  Δ={:.3}", delta_of("tensor-class9")),
                by_key("tensor-class9"),
            ),
        ),
    ];
    let panel_size = (560, 500);
    for (name, panel) in &panels {
        tensim_plot::render_panel(
            panel,
            &run.path(&format!("figures/panel-{name}.png")),
            panel_size,
        )?;
    }
    let grid: Vec<Panel> = panels.into_iter().map(|p| p.1).collect();
    tensim_plot::render_figure(&grid, 2, 4, panel_size, &run.path("figures/backdoor.png"))?;
    let slice_panels: Vec<Panel> = (0..classes)
        .map(|c| {
            heat(
                format!(
                    "class {c} slice  Δ={:.3}",
                    delta_of(&format!("tensor-class{c}"))
                ),
                &tensor.slices[c],
            )
        })
        .collect();
    tensim_plot::render_figure(
        &slice_panels,
        2,
        5,
        (420, 380),
        &run.path("figures/tensor-slices.png"),
    )?;
    let baseline_panels: Vec<Panel> = [
        "output-clean",
        "output-triggered",
        "output-class2",
        "output-class9",
        "output-union",
        "cka-logits",
    ]
    .iter()
    .map(|k| {
        let (_, name, m) = named.iter().find(|x| x.0 == *k).expect("computed");
        heat(format!("{name}  Δ={:.3}", delta_of(k)), m)
    })
    .collect();
    tensim_plot::render_figure(
        &baseline_panels,
        2,
        3,
        (480, 430),
        &run.path("figures/baselines.png"),
    )?;
    let seconds_figures = figures_start.elapsed().as_secs_f64();

    let last_a = &records[b_start - 1];
    let last = records.last().expect("records");
    let outcome = Outcome {
        run_dir: opts.out.clone(),
        checkpoints: n,
        final_train_accuracy: last.train_accuracy,
        final_test_accuracy: last.test_accuracy,
        attack_success_before: last_a.attack_success,
        attack_success_after: last.attack_success,
        deltas: deltas.clone(),
        detected_boundary_step: records[best.index].step,
        total_matrix_split_step: records[splits[0].index].step,
        true_boundary_step: records[b_start].step,
        detected_class: ranked[0].0,
        runner_up_class: ranked[1].0,
        class_margin: ranked[0].1 - ranked[1].1,
        seconds_training,
        seconds_matrices,
        seconds_figures,
        steps_per_second: total as f64 / seconds_training,
    };
    let report = crate::backdoor_report::render(&crate::backdoor_report::ReportInput {
        settings_json: serde_json::to_string_pretty(&s)?,
        quick: opts.quick,
        dataset: data.name.clone(),
        outcome: &outcome,
        named: named
            .iter()
            .map(|(k, n, _)| (k.clone(), n.clone()))
            .collect(),
        splits: &splits,
        class_splits: &class_splits,
        ranked: &ranked,
        n_a: b_start,
        n_b: n - b_start,
        wall_seconds: started.elapsed().as_secs_f64(),
        steps_clean: s.steps_clean,
        every: s.checkpoint_every,
        record_steps: records.iter().map(|r| r.step).collect(),
    });
    run.write_text("report.md", &report)?;
    Ok(outcome)
}
