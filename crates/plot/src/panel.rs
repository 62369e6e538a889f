//! What a panel shows: plain data, no drawing code.

use crate::colour::ColourScale;

/// A matrix drawn as coloured cells, row 0 at the top.
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub title: String,
    pub rows: usize,
    pub cols: usize,
    /// Row-major values; NaN cells are drawn grey.
    pub values: Vec<f64>,
    /// The colour mapping, limits included; the colour bar draws it.
    pub scale: ColourScale,
    /// What the colours measure, beside the colour bar (e.g. "similarity").
    pub colour_label: String,
    pub x_label: String,
    pub y_label: String,
    /// Lines drawn before these indices (phase or stage boundaries): on both
    /// axes for a square matrix, on the x axis otherwise.
    pub boundaries: Vec<usize>,
    /// Names of blocks starting at an index (stage names), on both axes of a square matrix.
    pub block_labels: Vec<(usize, String)>,
    /// Explicit x tick labels `(index, text)`; indices when empty.
    pub x_ticks: Vec<(usize, String)>,
    /// Explicit y tick labels `(index, text)`; indices when empty.
    pub y_ticks: Vec<(usize, String)>,
}

/// One named curve.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: Option<(u8, u8, u8)>,
}

/// Curves on shared axes, with a legend beside the plot.
#[derive(Clone, Debug)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic x axis (non-positive x are clamped to the smallest positive x).
    pub log_x: bool,
    pub y_range: Option<(f64, f64)>,
    /// Dashed vertical markers with a label, e.g. where a phase starts; the
    /// labels sit above the plot.
    pub vlines: Vec<(f64, String)>,
    /// Explicit x tick labels `(x, text)` (e.g. training steps over a
    /// checkpoint-index axis); numbers when empty.
    pub x_ticks: Vec<(f64, String)>,
    /// The x range drawn; the data's range when `None`.
    pub x_range: Option<(f64, f64)>,
}

/// A grayscale image in `[0, 1]`, row-major, drawn with square pixels.
#[derive(Clone, Debug)]
pub struct ImagePanel {
    pub title: String,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<f32>,
}

/// Any panel of a figure.
#[derive(Clone, Debug)]
pub enum Panel {
    Heatmap(Heatmap),
    Lines(LinePlot),
    Image(ImagePanel),
}
