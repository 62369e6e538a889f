//! # tensim-plot
//!
//! PNG figures for papers: similarity heatmaps over checkpoints (diverging
//! red–white–blue between the 1st and 99th percentile, phase boundaries,
//! block labels), training curves, and sample images. Plain data in, no
//! numeric-library types. The font (DejaVu Sans) is bundled, so rendering
//! never depends on system fonts. Files are written atomically.

mod colour;
mod panel;
mod render;

pub use colour::{diverging, percentile_range, sequential, ColourScale, TAB10};
pub use panel::{Heatmap, ImagePanel, LinePlot, Panel, Series};
pub use render::{render_figure, render_panel, PlotError};
