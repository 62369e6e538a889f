//! Drawing panels with plotters onto PNG bitmaps.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::colour::{diverging, percentile_range, sequential, ColourScale, TAB10};
use crate::panel::{Heatmap, ImagePanel, LinePlot, Panel};

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

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
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
                Panel::Heatmap(h) => draw_heatmap(area, h)?,
                Panel::Lines(l) => draw_lines(area, l)?,
                Panel::Image(i) => draw_image(area, i)?,
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

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// Names the axes `x_desc` and `y_desc` in the fonts every panel uses and
/// draws the mesh.
fn draw_mesh<X, Y>(
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

fn label_at(ticks: &[(usize, String)], v: f64) -> String {
    ticks
        .iter()
        .find(|(k, _)| (*k as f64 - v).abs() < 0.25)
        .map_or_else(String::new, |(_, s)| s.clone())
}

/// The tick labels of one heatmap axis of `len` cells: the `explicit` ones,
/// else the block labels of a square heatmap, else about eight indices.
fn ticks(
    explicit: &[(usize, String)],
    square: bool,
    block_labels: &[(usize, String)],
    len: usize,
) -> Vec<(usize, String)> {
    if !explicit.is_empty() {
        explicit.to_vec()
    } else if square && !block_labels.is_empty() {
        block_labels.to_vec()
    } else {
        (0..len)
            .step_by((len / 8).max(1))
            .map(|k| (k, k.to_string()))
            .collect()
    }
}

fn draw_heatmap(area: &Area, h: &Heatmap) -> DrawResult {
    let square = h.rows == h.cols;
    let (lo, hi) = percentile_range(&h.values, square.then_some(h.rows));
    let title = match h.scale {
        ColourScale::Diverging => format!("{}  [{lo:.3} … {hi:.3}]", h.title),
        ColourScale::Sequential => format!("{}  [{lo:.3} … {hi:.3}]", h.title),
    };
    let mid = if lo < 0.0 && hi > 0.0 {
        0.0
    } else {
        0.5 * (lo + hi)
    };
    let colour = |v: f64| -> RGBColor {
        if !v.is_finite() {
            return RGBColor(160, 160, 160);
        }
        let (r, g, b) = match h.scale {
            ColourScale::Diverging => diverging(v.clamp(lo, hi), lo, hi, mid),
            ColourScale::Sequential => sequential((v.clamp(lo, hi) - lo).max(0.0), hi - lo),
        };
        RGBColor(r, g, b)
    };
    let (rows, cols) = (h.rows as f64, h.cols as f64);
    let y_area = if h.block_labels.is_empty() && h.y_ticks.iter().all(|t| t.1.len() < 6) {
        50
    } else {
        90
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(17))
        .margin(8)
        .x_label_area_size(48)
        .y_label_area_size(y_area)
        .build_cartesian_2d(-0.5..cols - 0.5, -0.5..rows - 0.5)
        .map_err(err)?;
    // Row 0 at the top: drawn y = rows − 1 − i.
    let flip = |i: f64| rows - 1.0 - i;
    let x_ticks = ticks(&h.x_ticks, square, &h.block_labels, h.cols);
    let y_ticks = ticks(&h.y_ticks, square, &h.block_labels, h.rows);
    let x_fmt = |v: &f64| label_at(&x_ticks, *v);
    let y_fmt = |v: &f64| label_at(&y_ticks, flip(*v));
    draw_mesh(
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(h.cols.clamp(2, 200))
            .y_labels(h.rows.clamp(2, 200))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt),
        &h.x_label,
        &h.y_label,
    )?;
    chart
        .draw_series(
            (0..h.rows)
                .flat_map(|i| (0..h.cols).map(move |j| (i, j)))
                .map(|(i, j)| {
                    let y = flip(i as f64);
                    let x = j as f64;
                    Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        colour(h.values[i * h.cols + j]).filled(),
                    )
                }),
        )
        .map_err(err)?;
    for &b in &h.boundaries {
        let x = b as f64 - 0.5;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, -0.5), (x, rows - 0.5)],
                BLACK.stroke_width(1),
            )))
            .map_err(err)?;
        if square {
            let y = flip(b as f64) + 0.5;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(-0.5, y), (cols - 0.5, y)],
                    BLACK.stroke_width(1),
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

fn draw_lines(area: &Area, l: &LinePlot) -> DrawResult {
    let all: Vec<(f64, f64)> = l
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let min_pos = all
        .iter()
        .map(|p| p.0)
        .filter(|&x| x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let fix_x = |x: f64| {
        if l.log_x {
            x.max(if min_pos.is_finite() { min_pos } else { 1.0 })
        } else {
            x
        }
    };
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(fix_x(p.0)), b.max(fix_x(p.0)))
        });
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if l.log_x && x0 <= 0.0 {
        x0 = 1.0;
    }
    let (y0, y1) = l.y_range.unwrap_or_else(|| {
        let (a, b) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let pad = 0.05 * (b - a).max(1e-9);
        (a - pad, b + pad)
    });
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(l.title.as_str(), font(17))
        .margin(10)
        .x_label_area_size(44)
        .y_label_area_size(60);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            draw_mesh(
                chart
                    .configure_mesh()
                    .x_label_formatter(&|v| tick_text(*v))
                    .light_line_style(RGBColor(235, 235, 235)),
                &l.x_label,
                &l.y_label,
            )?;
            for (k, s) in l.series.iter().enumerate() {
                let (r, g, b) = s
                    .colour
                    .unwrap_or(DEFAULT_COLOURS[k % DEFAULT_COLOURS.len()]);
                let c = RGBColor(r, g, b);
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().map(|p| (fix_x(p.0), p.1)),
                        c.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
            }
            for (x, text) in &l.vlines {
                let x = fix_x(*x);
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(x, y0), (x, y1)],
                        6,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!(" {text}"),
                        (x, y1 - 0.04 * (y1 - y0)),
                        font(12),
                    )))
                    .map_err(err)?;
            }
            if !l.series.is_empty() {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(120, 120, 120))
                    .label_font(font(13))
                    .draw()
                    .map_err(err)?;
            }
        }};
    }
    if l.log_x {
        finish!(builder
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(err)?);
    } else {
        finish!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
    }
    Ok(())
}

/// Tick text without spurious decimals: `100`, `2500`, `0.5`, `1e5`.
fn tick_text(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.0e}")
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Colours of series that do not set one, in turn: blue, red, green, orange,
/// purple, grey.
const DEFAULT_COLOURS: [(u8, u8, u8); 6] =
    [TAB10[0], TAB10[3], TAB10[2], TAB10[1], TAB10[4], TAB10[7]];

fn draw_image(area: &Area, img: &ImagePanel) -> DrawResult {
    let titled = area.titled(&img.title, font(17)).map_err(err)?;
    let (tw, th) = titled.dim_in_pixel();
    let side = tw.min(th).saturating_sub(20);
    let (dx, dy) = ((tw - side) / 2, (th - side) / 2);
    let square = titled.shrink((dx, dy), (side, side));
    let (iw, ih) = (img.width.max(1) as f64, img.height.max(1) as f64);
    let mut chart = ChartBuilder::on(&square)
        .build_cartesian_2d(0.0..iw, 0.0..ih)
        .map_err(err)?;
    chart
        .draw_series(
            (0..img.height)
                .flat_map(|r| (0..img.width).map(move |c| (r, c)))
                .map(|(r, c)| {
                    let v = (img.pixels[r * img.width + c].clamp(0.0, 1.0) * 255.0).round() as u8;
                    let y = ih - r as f64;
                    Rectangle::new(
                        [(c as f64, y - 1.0), (c as f64 + 1.0, y)],
                        RGBColor(v, v, v).filled(),
                    )
                }),
        )
        .map_err(err)?;
    square
        .draw(&Rectangle::new(
            [(0, 0), (side as i32 - 1, side as i32 - 1)],
            RGBColor(120, 120, 120),
        ))
        .map_err(err)?;
    Ok(())
}
