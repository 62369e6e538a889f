//! Figures of the backdoor run: the eight-panel overview (samples,
//! curves, key matrices), all ten tensor class slices and the baselines.

use std::time::Instant;

use anyhow::Result;
use tensim_core::{Mat, Model};
use tensim_data::Split;
use tensim_plot::{Heatmap, ImagePanel, LinePlot, Panel, Series};

use super::analysis::Analysis;
use super::data::EvalSets;
use super::{Record, Settings};
use crate::figures::{share_colour_scale, similarity_heatmap, step_ticks};
use crate::recorder::Trajectory;
use crate::run_dir::RunDir;

/// A checkpoint heatmap with the phase boundary at `b_start`: the phases
/// name the y axis, the checkpoints' `steps` the x axis.
fn heat(title: String, m: &Mat<f64>, b_start: usize, steps: &[(usize, String)]) -> Panel {
    let labels = [
        (0, "A: clean".to_string()),
        (b_start, "B: poisoned".to_string()),
    ];
    match similarity_heatmap(title, m, &[b_start], &labels) {
        Panel::Heatmap(h) => Panel::Heatmap(Heatmap {
            x_ticks: steps.to_vec(),
            x_label: "checkpoint step".into(),
            y_label: String::new(),
            ..h
        }),
        other => other,
    }
}

/// The step of every checkpoint, as heatmap ticks.
fn steps(trajectory: &Trajectory<Model, Record>) -> Vec<(usize, String)> {
    let steps: Vec<u64> = trajectory.records.iter().map(|r| r.step).collect();
    step_ticks(&steps)
}

/// Accuracy and attack success over the steps.
fn curves(records: &[Record], s: &Settings) -> Panel {
    let steps_x: Vec<f64> = records.iter().map(|r| r.step as f64).collect();
    let series = |name: &str, f: &dyn Fn(&Record) -> f64, colour| Series {
        name: name.into(),
        points: steps_x.iter().copied().zip(records.iter().map(f)).collect(),
        colour: Some(colour),
    };
    Panel::Lines(LinePlot {
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
        x_ticks: vec![],
        x_range: None,
    })
}

/// A test image with the final model's prediction in its title.
fn sample_panel(what: &str, pixels: &[f32], model: &Model, data: &Split) -> Result<Panel> {
    let dim = data.test.dim();
    let y = model.forward(Mat::from_fn(1, dim, |_, j| f64::from(pixels[j])).as_ref())?;
    let predicted = (0..10).fold(0, |b, j| if y[(0, j)] > y[(0, b)] { j } else { b });
    Ok(Panel::Image(ImagePanel {
        title: format!("{what} sample → predicted {predicted}"),
        height: data.test.height,
        width: data.test.width,
        pixels: pixels.to_vec(),
    }))
}

/// The overview's eight panels, each with its file name.
fn overview(
    s: &Settings,
    data: &Split,
    sets: &EvalSets,
    trajectory: &Trajectory<Model, Record>,
    a: &Analysis,
) -> Result<Vec<(&'static str, Panel)>> {
    let final_model = trajectory.models.last().expect("at least one checkpoint");
    let sample_index = (0..data.test.len())
        .find(|&i| data.test.labels[i] != s.target_class)
        .unwrap_or(0);
    let clean_img = data.test.image(sample_index);
    let trig_img = sets.triggered_test.image(sample_index);
    let ticks = steps(trajectory);
    let keyed = |key: &'static str, title: &str| {
        let panel = heat(
            format!("{title}  Δ={:.3}", a.delta_of(key)),
            &a.by_key(key).2,
            a.b_start,
            &ticks,
        );
        (key, panel)
    };
    Ok(vec![
        (
            "clean-sample",
            sample_panel("clean", clean_img, final_model, data)?,
        ),
        ("curves", curves(&trajectory.records, s)),
        keyed("matrix-cosine", "matrix cosine"),
        keyed("tensor", "tensor (weight space)"),
        (
            "triggered-sample",
            sample_panel("triggered", trig_img, final_model, data)?,
        ),
        keyed("output-triggered", "output cos, triggered"),
        keyed("output-class9", "output cos, class 9"),
        keyed("tensor-class9", "tensor, class-9 slice"),
    ])
}

/// Renders every figure; returns the seconds it took.
pub(super) fn render(
    run: &RunDir,
    s: &Settings,
    data: &Split,
    sets: &EvalSets,
    trajectory: &Trajectory<Model, Record>,
    a: &Analysis,
) -> Result<f64> {
    let start = Instant::now();
    let panels = overview(s, data, sets, trajectory, a)?;
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
    let ticks = steps(trajectory);
    let mut slice_panels: Vec<Panel> = (0..10)
        .map(|c| {
            heat(
                format!(
                    "class {c} slice  Δ={:.3}",
                    a.delta_of(&format!("tensor-class{c}"))
                ),
                &a.tensor.slices[c],
                a.b_start,
                &ticks,
            )
        })
        .collect();
    share_colour_scale(&mut slice_panels);
    tensim_plot::render_figure(
        &slice_panels,
        2,
        5,
        (420, 380),
        &run.path("figures/tensor-slices.png"),
    )?;
    let baseline_panels: Vec<Panel> = a
        .baselines()
        .map(|(k, name, m)| {
            heat(
                format!("{name}  Δ={:.3}", a.delta_of(k)),
                m,
                a.b_start,
                &ticks,
            )
        })
        .collect();
    tensim_plot::render_figure(
        &baseline_panels,
        2,
        3,
        (480, 430),
        &run.path("figures/baselines.png"),
    )?;
    Ok(start.elapsed().as_secs_f64())
}
