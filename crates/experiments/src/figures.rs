//! Panels shared by the experiments: similarity heatmaps with phase or stage
//! boundaries, and training curves.

use tensim_core::Mat;
use tensim_plot::{ColourScale, Heatmap, LinePlot, Panel, Series};

/// A square similarity heatmap over checkpoints with block boundaries and labels.
pub fn similarity_heatmap(
    title: String,
    m: &Mat<f64>,
    boundaries: &[usize],
    block_labels: &[(usize, String)],
) -> Panel {
    Panel::Heatmap(Heatmap {
        boundaries: boundaries.to_vec(),
        block_labels: block_labels.to_vec(),
        ..matrix_heatmap(title, m, ColourScale::Diverging, "checkpoint", "checkpoint")
    })
}

/// A heatmap of the matrix `m` with these axis labels, and no boundaries,
/// block labels or explicit ticks (set them with struct update syntax).
pub fn matrix_heatmap(
    title: impl Into<String>,
    m: &Mat<f64>,
    scale: ColourScale,
    x_label: &str,
    y_label: &str,
) -> Heatmap {
    Heatmap {
        title: title.into(),
        rows: m.nrows(),
        cols: m.ncols(),
        values: row_major(m),
        scale,
        x_label: x_label.into(),
        y_label: y_label.into(),
        boundaries: vec![],
        block_labels: vec![],
        x_ticks: vec![],
        y_ticks: vec![],
    }
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
    })
}

/// Ten distinguishable colours (one per digit): matplotlib's `tab10`.
pub const PALETTE: [(u8, u8, u8); 10] = tensim_plot::TAB10;
