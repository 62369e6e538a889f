//! Figures of the forgetting run: single panels, the global metrics, the
//! class slices, per-digit accuracy, and the whole story in one figure.

use std::time::Instant;

use anyhow::Result;
use tensim_plot::{Heatmap, Panel};

use super::analysis::Analysis;
use super::train::Trained;
use crate::figures::{
    lines, matrix_heatmap, series, share_colour_scale, similarity_heatmap, step_ticks, PALETTE,
};
use crate::run_dir::RunDir;

/// Stage boundaries, stage names and checkpoint steps of the checkpoint heatmaps.
struct Blocks {
    boundaries: Vec<usize>,
    labels: Vec<(usize, String)>,
    steps: Vec<(usize, String)>,
}

impl Blocks {
    /// A heatmap over the checkpoints: steps along x, stage names along y.
    fn heat(&self, title: String, m: &tensim_core::Mat<f64>) -> Panel {
        match similarity_heatmap(title, m, &self.boundaries, &self.labels) {
            Panel::Heatmap(h) => Panel::Heatmap(Heatmap {
                x_ticks: self.steps.clone(),
                x_label: "checkpoint step".into(),
                y_label: String::new(),
                ..h
            }),
            other => other,
        }
    }
}

/// Gaussian, CKA and matrix cosine, then the ten Gaussian class slices (one
/// colour scale for the ten), each rendered to its own `figures/panel-*.png`.
fn matrix_panels(run: &RunDir, a: &Analysis, b: &Blocks) -> Result<Vec<Panel>> {
    let mut panels = vec![
        b.heat("gaussian (uncentred, moments)".into(), &a.gaussian.total),
        b.heat("linear CKA of logits".into(), &a.cka),
        b.heat("matrix cosine".into(), &a.weights),
    ];
    for (c, m) in a.gaussian.slices.iter().enumerate() {
        panels.push(b.heat(format!("gaussian, class {c} slice"), m));
    }
    share_colour_scale(&mut panels[3..]);
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
    Ok(panels)
}

/// Test accuracy of each digit over the steps, stage starts marked.
fn accuracy_panel(t: &Trained) -> Panel {
    let records = &t.trajectory.records;
    let xs: Vec<f64> = records.iter().map(|r| r.step as f64).collect();
    // Each line at the step its stage starts (the previous stage's last
    // checkpoint), not at the stage's first checkpoint after it.
    let stage_lines: Vec<(f64, String)> = t.stages[1..]
        .iter()
        .enumerate()
        .map(|(k, st)| {
            (
                t.stage_steps[..=k].iter().sum::<u64>() as f64,
                st.name.clone(),
            )
        })
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
    lines(
        "test accuracy per digit",
        "step",
        "accuracy",
        digit_series,
        false,
        Some((0.0, 1.0)),
        stage_lines,
    )
}

/// Similarity of the stage updates, stages as ticks.
fn updates_panel(t: &Trained, a: &Analysis) -> Panel {
    let ticks: Vec<(usize, String)> = t
        .stages
        .iter()
        .enumerate()
        .map(|(i, st)| (i, st.name.clone()))
        .collect();
    Panel::Heatmap(Heatmap {
        x_ticks: ticks.clone(),
        y_ticks: ticks,
        ..matrix_heatmap(
            "stage updates, gaussian",
            &a.update_matrix,
            "similarity",
            "stage",
            "stage",
        )
    })
}

/// Renders every figure; returns the seconds it took.
pub(super) fn render(run: &RunDir, t: &Trained, a: &Analysis) -> Result<f64> {
    let start = Instant::now();
    let steps: Vec<u64> = t.trajectory.records.iter().map(|r| r.step).collect();
    let blocks = Blocks {
        boundaries: t.stage_first[1..].to_vec(),
        labels: t
            .stage_first
            .iter()
            .zip(&t.stages)
            .map(|(&i, st)| (i, st.name.clone()))
            .collect(),
        steps: step_ticks(&steps),
    };
    let panels = matrix_panels(run, a, &blocks)?;
    let global: Vec<_> = panels.into_iter().take(3).collect();
    let path = |name: &str| run.path(&format!("figures/{name}.png"));
    tensim_plot::render_figure(&global, 1, 3, (640, 600), &path("global-metrics"))?;
    let mut slices: Vec<_> = a
        .gaussian
        .slices
        .iter()
        .enumerate()
        .map(|(c, m)| blocks.heat(format!("class {c} slice"), m))
        .collect();
    share_colour_scale(&mut slices);
    tensim_plot::render_figure(&slices, 2, 5, (440, 420), &path("class-slices"))?;
    let acc = accuracy_panel(t);
    tensim_plot::render_panel(&acc, &path("per-digit-accuracy"), (1100, 520))?;
    // The whole story in one figure: three global metrics, accuracy, stage
    // updates (row 1), then the ten class slices.
    let mut story = global;
    story.push(acc);
    story.push(updates_panel(t, a));
    story.extend(slices);
    tensim_plot::render_figure(&story, 3, 5, (520, 480), &path("forgetting"))?;
    Ok(start.elapsed().as_secs_f64())
}
