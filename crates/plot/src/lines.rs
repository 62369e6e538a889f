//! A line panel: curves on shared axes, the legend in the strip right of
//! the plot and marker names above it, so neither covers a curve.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::colour::TAB10;
use crate::panel::LinePlot;
use crate::render::{
    draw_mesh, err, fill_rect, font, text_at, text_size, tick_text, Area, DrawResult, BOTTOM,
    LABEL_SIZE, LEFT, MARGIN, RIGHT, TITLE_SIZE,
};
use crate::ticks::{self, Tick};

/// Colours of series that do not set one, in turn: blue, red, green, orange,
/// purple, grey.
const DEFAULT_COLOURS: [(u8, u8, u8); 6] =
    [TAB10[0], TAB10[3], TAB10[2], TAB10[1], TAB10[4], TAB10[7]];

/// Rows of marker names above the plot (names that would overlap stagger).
const MARKER_ROWS: u32 = 2;

/// The x and y ranges of the finite points (`y_range` when given), x moved
/// onto the positive axis when it is logarithmic.
struct Ranges {
    x: (f64, f64),
    y: (f64, f64),
    min_positive_x: f64,
}

fn ranges(l: &LinePlot) -> Option<Ranges> {
    let all: Vec<(f64, f64)> = l
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if all.is_empty() {
        return None;
    }
    let min_pos = all
        .iter()
        .map(|p| p.0)
        .filter(|&x| x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let min_positive_x = if min_pos.is_finite() { min_pos } else { 1.0 };
    let fix = |x: f64| if l.log_x { x.max(min_positive_x) } else { x };
    let span = |v: &mut dyn Iterator<Item = f64>| {
        v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        })
    };
    let (x0, mut x1) = l
        .x_range
        .unwrap_or_else(|| span(&mut all.iter().map(|p| fix(p.0))));
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y = l.y_range.unwrap_or_else(|| {
        let (a, b) = span(&mut all.iter().map(|p| p.1));
        let pad = 0.05 * (b - a).max(1e-9);
        (a - pad, b + pad)
    });
    Some(Ranges {
        x: (x0, x1),
        y,
        min_positive_x,
    })
}

/// Draws the line plot `l` into `area`.
pub(crate) fn draw(area: &Area, l: &LinePlot) -> DrawResult {
    let Some(r) = ranges(l) else {
        return Ok(());
    };
    let fix = |x: f64| if l.log_x { x.max(r.min_positive_x) } else { x };
    let marker_space = if l.vlines.is_empty() {
        0
    } else {
        MARKER_ROWS * (LABEL_SIZE + 4)
    };
    // The title first, then room for the marker names between it and the plot.
    let area = &area.titled(&l.title, font(TITLE_SIZE)).map_err(err)?;
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(MARGIN)
        .margin_top(MARGIN + marker_space)
        .margin_right(RIGHT)
        .x_label_area_size(BOTTOM)
        .y_label_area_size(LEFT);
    let explicit = !l.x_ticks.is_empty();
    let plot_width = area.dim_in_pixel().0.saturating_sub(MARGIN + LEFT + RIGHT);
    let x_numbers = (plot_width / 80).max(2) as usize;
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            let mut mesh = chart.configure_mesh();
            mesh.light_line_style(RGBColor(240, 240, 240))
                .max_light_lines(2)
                .y_label_formatter(&|v| tick_text(*v));
            if explicit {
                mesh.disable_x_mesh().x_label_formatter(&|_| String::new());
            } else {
                // About one number per 80 pixels, so "10000" never meets "9000".
                mesh.x_labels(x_numbers)
                    .x_label_formatter(&|v| tick_text(*v));
            }
            draw_mesh(&mut mesh, &l.x_label, &l.y_label)?;
            for (k, s) in l.series.iter().enumerate() {
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().map(|p| (fix(p.0), p.1)),
                        series_colour(k, s.colour).stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            let (y0, y1) = r.y;
            for (x, _) in &l.vlines {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(fix(*x), y0), (fix(*x), y1)],
                        6,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            let px = |x: f64| chart.backend_coord(&(fix(x), y0)).0;
            let (xs, ys) = chart.plotting_area().get_pixel_range();
            let plot = (xs.start, xs.end, ys.start, ys.end);
            let markers: Vec<(i32, &str)> =
                l.vlines.iter().map(|(x, t)| (px(*x), t.as_str())).collect();
            draw_marker_names(area, plot, &markers)?;
            if explicit {
                let ticks: Vec<(i32, &str)> = l
                    .x_ticks
                    .iter()
                    .map(|(x, t)| (px(*x), t.as_str()))
                    .collect();
                draw_x_ticks(area, plot, &ticks)?;
            }
            draw_legend(area, plot, l)?;
        }};
    }
    if l.log_x {
        finish!(builder
            .build_cartesian_2d((r.x.0..r.x.1).log_scale(), r.y.0..r.y.1)
            .map_err(err)?);
    } else {
        finish!(builder
            .build_cartesian_2d(r.x.0..r.x.1, r.y.0..r.y.1)
            .map_err(err)?);
    }
    Ok(())
}

fn series_colour(k: usize, colour: Option<(u8, u8, u8)>) -> RGBColor {
    let (r, g, b) = colour.unwrap_or(DEFAULT_COLOURS[k % DEFAULT_COLOURS.len()]);
    RGBColor(r, g, b)
}

/// The legend in the strip right of the plot, one entry per line from the top.
fn draw_legend(area: &Area, (_, x1, y0, _): (i32, i32, i32, i32), l: &LinePlot) -> DrawResult {
    let style = font(LABEL_SIZE);
    let step = LABEL_SIZE as i32 + 6;
    for (k, s) in l.series.iter().enumerate() {
        let y = y0 + 8 + step * k as i32;
        let c = series_colour(k, s.colour);
        fill_rect(area, (x1 + 12, y - 1), (x1 + 30, y + 1), c)?;
        text_at(
            area,
            &s.name,
            (x1 + 35, y),
            &style,
            HPos::Left,
            VPos::Center,
        )?;
    }
    Ok(())
}

/// Marker names above the plot, starting at their line; a name that would
/// overlap the previous one on the lower row goes to the upper row.
fn draw_marker_names(
    area: &Area,
    (_, _, y0, _): (i32, i32, i32, i32),
    markers: &[(i32, &str)],
) -> DrawResult {
    let style = font(LABEL_SIZE - 1);
    let mut row_end = [i32::MIN; MARKER_ROWS as usize];
    for &(x, text) in markers {
        let w = text_size(area, text, &style).0.ceil() as i32;
        let row = row_end.iter().position(|&end| x + 2 > end + 4).unwrap_or(0);
        row_end[row] = x + 2 + w;
        let y = y0 - 3 - row as i32 * (LABEL_SIZE as i32 + 4);
        text_at(area, text, (x + 2, y), &style, HPos::Left, VPos::Bottom)?;
    }
    Ok(())
}

/// Explicit x tick labels under the plot, thinned so none overlap.
fn draw_x_ticks(
    area: &Area,
    (x0, _, _, y1): (i32, i32, i32, i32),
    labels: &[(i32, &str)],
) -> DrawResult {
    let style = font(LABEL_SIZE);
    let ticks: Vec<Tick> = labels
        .iter()
        .map(|&(x, t)| Tick {
            at: f64::from(x - x0),
            text: t.to_string(),
        })
        .collect();
    for t in ticks::thin(ticks, |t| text_size(area, t, &style).0, 6.0) {
        let px = x0 + t.at.round() as i32;
        fill_rect(area, (px, y1), (px + 1, y1 + 5), BLACK)?;
        text_at(area, &t.text, (px, y1 + 7), &style, HPos::Center, VPos::Top)?;
    }
    Ok(())
}
