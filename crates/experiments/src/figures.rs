//! Panels shared by the experiments: similarity heatmaps with phase or stage
//! boundaries and one honest colour scale per compared group, checkpoint
//! axes labelled by training step, and training curves.

use tensim_core::Mat;
use tensim_plot::{ColourScale, Heatmap, LinePlot, Panel, Series};

/// A square similarity heatmap over checkpoints with block boundaries and
/// labels, its colour scale fitted to its own values.
pub fn similarity_heatmap(
    title: String,
    m: &Mat<f64>,
    boundaries: &[usize],
    block_labels: &[(usize, String)],
) -> Panel {
    Panel::Heatmap(Heatmap {
        boundaries: boundaries.to_vec(),
        block_labels: block_labels.to_vec(),
        ..matrix_heatmap(title, m, "similarity", "checkpoint", "checkpoint")
    })
}

/// A heatmap of the matrix `m` with these axis labels, its colour scale
/// fitted to its values ([`ColourScale::fit`]) and named `colour_label`; no
/// boundaries, block labels or explicit ticks (set them with struct update
/// syntax).
pub fn matrix_heatmap(
    title: impl Into<String>,
    m: &Mat<f64>,
    colour_label: &str,
    x_label: &str,
    y_label: &str,
) -> Heatmap {
    let values = row_major(m);
    Heatmap {
        title: title.into(),
        rows: m.nrows(),
        cols: m.ncols(),
        scale: ColourScale::fit([&values[..]]),
        values,
        colour_label: colour_label.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        boundaries: vec![],
        block_labels: vec![],
        x_ticks: vec![],
        y_ticks: vec![],
    }
}

/// Gives every heatmap among `panels` one colour scale fitted to all their
/// values together, for panels a reader compares with each other (the ten
/// class slices of one metric, say).
pub fn share_colour_scale(panels: &mut [Panel]) {
    let scale = ColourScale::fit(panels.iter().filter_map(|p| match p {
        Panel::Heatmap(h) => Some(&h.values[..]),
        _ => None,
    }));
    for p in panels {
        if let Panel::Heatmap(h) = p {
            h.scale = scale;
        }
    }
}

/// Labels every checkpoint of a checkpoint axis with its training step (the
/// renderer keeps as many as fit).
pub fn step_ticks(steps: &[u64]) -> Vec<(usize, String)> {
    steps.iter().map(|s| s.to_string()).enumerate().collect()
}

/// Row-major values of a matrix.
pub fn row_major(m: &Mat<f64>) -> Vec<f64> {
    (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |j| (i, j)))
        .map(|(i, j)| m[(i, j)])
        .collect()
}

/// A line series from x values and y values.
pub fn series(
    name: &str,
    xs: &[f64],
    ys: impl IntoIterator<Item = f64>,
    colour: (u8, u8, u8),
) -> Series {
    Series {
        name: name.into(),
        points: xs.iter().copied().zip(ys).collect(),
        colour: Some(colour),
    }
}

/// A line plot.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: Vec<Series>,
    log_x: bool,
    y_range: Option<(f64, f64)>,
    vlines: Vec<(f64, String)>,
) -> Panel {
    Panel::Lines(LinePlot {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        series,
        log_x,
        y_range,
        vlines,
        x_ticks: vec![],
        x_range: None,
    })
}

/// Curves of per-checkpoint values over the checkpoint index, labelled by
/// training step, spanning the same cells as a heatmap over those
/// checkpoints: a figure that stacks it above such heatmaps has one x axis.
pub fn over_checkpoints(plot: Panel, steps: &[u64]) -> Panel {
    match plot {
        Panel::Lines(l) => Panel::Lines(LinePlot {
            x_ticks: step_ticks(steps)
                .into_iter()
                .map(|(i, s)| (i as f64, s))
                .collect(),
            x_range: Some((-0.5, steps.len() as f64 - 0.5)),
            log_x: false,
            ..l
        }),
        other => other,
    }
}

/// Ten distinguishable colours (one per digit): matplotlib's `tab10`.
pub const PALETTE: [(u8, u8, u8); 10] = tensim_plot::TAB10;
