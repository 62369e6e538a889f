//! Drawing panels with plotters onto PNG bitmaps.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::panel::Panel;

/// A figure that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PlotError {
    pub path: PathBuf,
    pub message: String,
}

const FONT: &str = "sans-serif";
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../fonts/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the bundled DejaVu Sans font is valid"));
    });
}

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
pub(crate) type DrawResult = Result<(), String>;

/// Every panel's layout, in pixels, so that panels of one width stacked in a
/// figure share their plotting columns (one x axis down a column).
pub(crate) const MARGIN: u32 = 8;
/// The y label area: tick labels and the axis name.
pub(crate) const LEFT: u32 = 96;
/// The strip right of the plot: a heatmap's colour bar, a line plot's legend.
pub(crate) const RIGHT: u32 = 132;
/// The x label area when the labels are horizontal.
pub(crate) const BOTTOM: u32 = 48;
pub(crate) const TITLE_SIZE: u32 = 17;
pub(crate) const LABEL_SIZE: u32 = 13;

pub(crate) fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Renders one panel to a PNG of `size` pixels, atomically.
pub fn render_panel(panel: &Panel, path: &Path, size: (u32, u32)) -> Result<(), PlotError> {
    render_figure(std::slice::from_ref(panel), 1, 1, size, path)
}

/// Renders `rows × cols` panels (row-major; missing cells stay blank), each
/// `panel_size` pixels, to one PNG, atomically (temporary file, then rename).
pub fn render_figure(
    panels: &[Panel],
    rows: usize,
    cols: usize,
    panel_size: (u32, u32),
    path: &Path,
) -> Result<(), PlotError> {
    register_font();
    let fail = |message: String| PlotError {
        path: path.to_path_buf(),
        message,
    };
    if rows * cols < panels.len() {
        return Err(fail(format!(
            "{} panels do not fit a {rows}×{cols} grid",
            panels.len()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = path
        .file_stem()
        .map_or_else(|| "figure".into(), |s| s.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{stem}.{}.tmp.png", std::process::id()));
    let size = (panel_size.0 * cols as u32, panel_size.1 * rows as u32);
    let drawn = (|| -> DrawResult {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let cells = root.split_evenly((rows, cols));
        for (panel, area) in panels.iter().zip(cells.iter()) {
            match panel {
                Panel::Heatmap(h) => crate::heatmap::draw(area, h)?,
                Panel::Lines(l) => crate::lines::draw(area, l)?,
                Panel::Image(i) => crate::image::draw(area, i)?,
            }
        }
        root.present().map_err(err)
    })();
    match drawn.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string())) {
        Ok(()) => Ok(()),
        Err(message) => {
            let _ = std::fs::remove_file(&tmp);
            Err(fail(message))
        }
    }
}

pub(crate) fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// Names the axes `x_desc` and `y_desc` in the fonts every panel uses and
/// draws the mesh.
pub(crate) fn draw_mesh<X, Y>(
    mesh: &mut MeshStyle<'_, '_, X, Y, BitMapBackend<'_>>,
    x_desc: &str,
    y_desc: &str,
) -> DrawResult
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(err)
}

/// The pixel size of `text` in `style` (an estimate from the font's metrics).
pub(crate) fn text_size(area: &Area, text: &str, style: &TextStyle) -> (f64, f64) {
    area.estimate_text_size(text, style)
        .map_or((7.0 * text.len() as f64, 14.0), |(w, h)| {
            (w as f64, h as f64)
        })
}

/// Draws `text` at the absolute backend pixel `at`, anchored by `h` and `v`.
pub(crate) fn text_at(
    area: &Area,
    text: &str,
    at: (i32, i32),
    style: &TextStyle,
    h: HPos,
    v: VPos,
) -> DrawResult {
    let base = area.get_base_pixel();
    let style = style.pos(Pos::new(h, v));
    area.draw(&Text::new(
        text.to_string(),
        (at.0 - base.0, at.1 - base.1),
        style,
    ))
    .map_err(err)
}

/// Fills the absolute pixel rectangle from `a` to `b` with `colour`.
pub(crate) fn fill_rect(area: &Area, a: (i32, i32), b: (i32, i32), colour: RGBColor) -> DrawResult {
    let base = area.get_base_pixel();
    let rel = |p: (i32, i32)| (p.0 - base.0, p.1 - base.1);
    area.draw(&Rectangle::new([rel(a), rel(b)], colour.filled()))
        .map_err(err)
}

/// Tick text without spurious decimals: `100`, `2500`, `0.5`, `1e5`, `0.125`.
pub(crate) fn tick_text(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.0e}")
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
