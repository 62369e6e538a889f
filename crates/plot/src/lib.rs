//! # tensim-plot
//!
//! PNG figures for papers: similarity heatmaps over checkpoints (one honest
//! colour scale with a colour bar: sequential when no value is negative,
//! else red–white–blue symmetric about 0; phase boundaries; block labels),
//! training curves, and sample images. Every panel has the same margins, so
//! the panels of one column of a figure share their x axis. Plain data in, no
//! numeric-library types. The font (DejaVu Sans) is bundled, so rendering
//! never depends on system fonts. Files are written atomically.

mod colour;
mod heatmap;
mod image;
mod lines;
mod panel;
mod render;
mod ticks;

pub use colour::{ColourScale, TAB10};
pub use panel::{Heatmap, ImagePanel, LinePlot, Panel, Series};
pub use render::{render_figure, render_panel, PlotError};
