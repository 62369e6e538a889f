//! Figures of the forgetting run: single panels, the global metrics, the
//! class slices, per-digit accuracy, and the whole story in one figure.

use std::time::Instant;

use anyhow::Result;
use tensim_plot::{ColourScale, Heatmap, Panel};

use super::analysis::Analysis;
use super::train::Trained;
use crate::figures::{lines, matrix_heatmap, series, similarity_heatmap, PALETTE};
use crate::run_dir::RunDir;

/// Stage boundaries and labels of the checkpoint heatmaps.
struct Blocks {
    boundaries: Vec<usize>,
    labels: Vec<(usize, String)>,
}

/// Gaussian, CKA and matrix cosine, then the ten Gaussian class slices,
/// each rendered to its own `figures/panel-*.png`.
fn matrix_panels(run: &RunDir, a: &Analysis, b: &Blocks) -> Result<Vec<Panel>> {
    let heat = |title: String, m| similarity_heatmap(title, m, &b.boundaries, &b.labels);
    let mut panels = vec![
        heat("gaussian (uncentred, moments)".into(), &a.gaussian.total),
        heat("linear CKA of logits".into(), &a.cka),
        heat("matrix cosine".into(), &a.weights),
    ];
    for (c, m) in a.gaussian.slices.iter().enumerate() {
        panels.push(heat(format!("gaussian, class {c} slice"), m));
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
    Ok(panels)
}

/// Test accuracy of each digit over the steps, stage starts marked.
fn accuracy_panel(t: &Trained) -> Panel {
    let records = &t.trajectory.records;
    let xs: Vec<f64> = records.iter().map(|r| r.step as f64).collect();
    let stage_lines: Vec<(f64, String)> = t.stage_first[1..]
        .iter()
        .zip(&t.stages[1..])
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
            ColourScale::Diverging,
            "stage",
            "stage",
        )
    })
}

/// Renders every figure; returns the seconds it took.
pub(super) fn render(run: &RunDir, t: &Trained, a: &Analysis) -> Result<f64> {
    let start = Instant::now();
    let blocks = Blocks {
        boundaries: t.stage_first[1..].to_vec(),
        labels: t
            .stage_first
            .iter()
            .zip(&t.stages)
            .map(|(&i, st)| (i, st.name.clone()))
            .collect(),
    };
    let panels = matrix_panels(run, a, &blocks)?;
    let global: Vec<_> = panels.into_iter().take(3).collect();
    let path = |name: &str| run.path(&format!("figures/{name}.png"));
    tensim_plot::render_figure(&global, 1, 3, (640, 600), &path("global-metrics"))?;
    let slices: Vec<_> = a
        .gaussian
        .slices
        .iter()
        .enumerate()
        .map(|(c, m)| similarity_heatmap(format!("class {c} slice"), m, &blocks.boundaries, &[]))
        .collect();
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
