//! The grokking figure: accuracy, loss, tensor similarity with the detected
//! boundary, and the frequencies, all four over the same checkpoint axis
//! (checkpoints are power-spaced in step, ticks name the step), so the rows
//! of the stacked figure line up.

use anyhow::Result;
use tensim_plot::{Heatmap, Panel};

use super::analysis::Analysis;
use super::{first_crossing, Record};
use crate::figures::{lines, matrix_heatmap, over_checkpoints, series, step_ticks};
use crate::run_dir::RunDir;

const BLUE: (u8, u8, u8) = tensim_plot::TAB10[0];
const RED: (u8, u8, u8) = tensim_plot::TAB10[3];

/// The label of the checkpoint axis every panel shares.
const X_LABEL: &str = "checkpoint step (power-spaced)";

fn steps(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.step).collect()
}

/// Train and validation curves of `f` at each checkpoint, the first
/// checkpoint with validation accuracy ≥ 0.5 marked.
fn curves(
    title: &str,
    y_label: &str,
    records: &[Record],
    f: [fn(&Record) -> f64; 2],
    y_range: Option<(f64, f64)>,
) -> Panel {
    let xs: Vec<f64> = (0..records.len()).map(|i| i as f64).collect();
    let val05 = first_crossing(records, |r| r.validation_accuracy, 0.5);
    let vlines: Vec<(f64, String)> = val05
        .and_then(|st| records.iter().position(|r| r.step == st))
        .map(|i| vec![(i as f64, "validation 50%".to_string())])
        .unwrap_or_default();
    let plot = lines(
        title,
        X_LABEL,
        y_label,
        vec![
            series("train", &xs, records.iter().map(f[0]), BLUE),
            series("validation", &xs, records.iter().map(f[1]), RED),
        ],
        false,
        y_range,
        vlines,
    );
    over_checkpoints(plot, &steps(records))
}

/// The similarity and frequency heatmaps, checkpoint steps as ticks.
fn heatmaps(records: &[Record], a: &Analysis) -> (Panel, Panel) {
    let bins = a.frequencies.nrows();
    let ticks = step_ticks(&steps(records));
    let sim = Panel::Heatmap(Heatmap {
        boundaries: vec![a.best.index],
        x_ticks: ticks.clone(),
        y_ticks: ticks.clone(),
        ..matrix_heatmap(
            "tensor similarity (weight space)",
            &a.tensor,
            "similarity",
            X_LABEL,
            "checkpoint step",
        )
    });
    let freq = Panel::Heatmap(Heatmap {
        x_ticks: ticks,
        y_ticks: (0..bins).step_by(8).map(|k| (k, k.to_string())).collect(),
        ..matrix_heatmap(
            "frequencies read from the weights",
            &a.frequencies,
            "share of the spectrum",
            X_LABEL,
            "frequency",
        )
    });
    (sim, freq)
}

/// Renders the four panels and the stacked figure.
pub(super) fn render(run: &RunDir, records: &[Record], a: &Analysis) -> Result<()> {
    let acc = curves(
        "accuracy",
        "accuracy",
        records,
        [|r| r.train_accuracy, |r| r.validation_accuracy],
        Some((0.0, 1.0)),
    );
    let loss = curves(
        "loss",
        "log10 cross-entropy",
        records,
        [
            |r| r.train_loss.max(1e-8).log10(),
            |r| r.validation_loss.max(1e-8).log10(),
        ],
        None,
    );
    let (sim, freq) = heatmaps(records, a);
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
    Ok(())
}
