//! Figures of one language model (EXPERIMENTS §4, six panels): n-gram
//! scores and the five similarity matrices; the losses get a panel of their
//! own.

use anyhow::Result;
use tensim_core::Mat;
use tensim_plot::{Heatmap, Panel};

use super::analysis::Analysis;
use super::inputs::Inputs;
use super::train::Trained;
use crate::figures::{lines, series, similarity_heatmap, step_ticks};
use crate::run_dir::RunDir;

const COLOURS: [(u8, u8, u8); 3] = [(255, 127, 14), (44, 160, 44), (214, 39, 40)];

/// Held-out loss of the model beside the n-gram models' losses.
fn loss_panel(t: &Trained, inputs: &Inputs, xs: &[f64]) -> Panel {
    let records = &t.trajectory.records;
    let mut curves = vec![series(
        "model (t ≥ 2)",
        xs,
        records.iter().map(|r| r.heldout_loss[2]),
        (31, 119, 180),
    )];
    for (k, colour) in COLOURS.iter().enumerate() {
        let loss = inputs.ngram_losses[k];
        curves.push(series(
            &format!("{}-gram", k + 2),
            xs,
            xs.iter().map(|_| loss),
            *colour,
        ));
    }
    lines(
        "held-out loss (nats) vs n-gram models",
        "step (log)",
        "cross-entropy",
        curves,
        true,
        None,
        vec![],
    )
}

/// The n-gram scores over log steps.
fn scores_panel(t: &Trained, xs: &[f64]) -> Panel {
    let records = &t.trajectory.records;
    lines(
        "n-gram score (l_test(n) / l_gram(n), paper)",
        "step (log)",
        "score",
        (0..3)
            .map(|k| {
                series(
                    &format!("{}-gram", k + 2),
                    xs,
                    records.iter().map(|r| r.ngram_scores[k]),
                    COLOURS[k],
                )
            })
            .collect(),
        true,
        None,
        vec![],
    )
}

/// Renders the loss panel, the six panels and their grid.
pub(super) fn render(run: &RunDir, inputs: &Inputs, t: &Trained, a: &Analysis) -> Result<()> {
    let layers = t.layers;
    let xs: Vec<f64> = t
        .trajectory
        .records
        .iter()
        .map(|r| r.step.max(1) as f64)
        .collect();
    let path = |name: &str| run.path(&format!("figures/{layers}-layer{name}.png"));
    tensim_plot::render_panel(&loss_panel(t, inputs, &xs), &path("-loss"), (700, 520))?;
    let steps: Vec<u64> = t.trajectory.records.iter().map(|r| r.step).collect();
    let ticks = step_ticks(&steps);
    let heat = |title: &str, m: &Mat<f64>| match similarity_heatmap(title.into(), m, &[], &[]) {
        Panel::Heatmap(h) => Panel::Heatmap(Heatmap {
            x_ticks: ticks.clone(),
            y_ticks: ticks.clone(),
            x_label: "checkpoint step (log-spaced)".into(),
            y_label: "checkpoint step".into(),
            ..h
        }),
        other => other,
    };
    let m = &a.matrices;
    let panels: Vec<(&str, Panel)> = vec![
        ("ngram", scores_panel(t, &xs)),
        (
            "gaussian",
            heat(
                "gaussian (uncentred, moments through attention)",
                &m.gaussian,
            ),
        ),
        ("text", heat("output cosine on held-out text", &m.text)),
        (
            "gaussian-output",
            heat("output cosine on Gaussian inputs", &m.gaussian_output),
        ),
        (
            "residual",
            heat("output cosine on residual-stream activations", &m.residual),
        ),
        ("matrix", heat("matrix cosine (all parameters)", &m.weights)),
    ];
    for (name, panel) in &panels {
        tensim_plot::render_panel(panel, &path(&format!("-{name}")), (700, 520))?;
    }
    let grid: Vec<Panel> = panels.into_iter().map(|p| p.1).collect();
    tensim_plot::render_figure(&grid, 2, 3, (700, 520), &path(""))?;
    Ok(())
}
