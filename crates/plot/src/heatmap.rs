//! A heatmap panel: coloured cells (row 0 at the top), block boundaries,
//! labels that never collide, and a colour bar stating the scale.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::colour::ColourScale;
use crate::panel::Heatmap;
use crate::render::{
    draw_mesh, err, fill_rect, font, text_at, text_size, tick_text, Area, DrawResult, LABEL_SIZE,
    LEFT, MARGIN, RIGHT, TITLE_SIZE,
};
use crate::ticks::{self, Tick};

/// Where the labels of one axis come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The explicit ticks (e.g. steps); the renderer may drop crowded ones.
    Explicit,
    /// The block names, centred on their blocks; every one is drawn.
    Blocks,
    /// About eight indices.
    Indices,
}

/// Which labels an axis shows: the x axis prefers explicit ticks to block
/// names, the y axis block names to explicit ticks, so a square heatmap with
/// both shows steps along x and stage names along y.
fn source(
    explicit: &[(usize, String)],
    blocks: &[(usize, String)],
    square: bool,
    x: bool,
) -> Source {
    let blocks = square && !blocks.is_empty();
    match (x, !explicit.is_empty(), blocks) {
        (true, true, _) | (false, true, false) => Source::Explicit,
        (_, _, true) => Source::Blocks,
        _ => Source::Indices,
    }
}

/// The labels of one axis of `len` cells as `(cell position, text)`.
fn axis_labels(
    source: Source,
    explicit: &[(usize, String)],
    blocks: &[(usize, String)],
    len: usize,
) -> Vec<(f64, String)> {
    match source {
        Source::Explicit => explicit
            .iter()
            .map(|(k, s)| (*k as f64, s.clone()))
            .collect(),
        Source::Blocks => {
            let mut sorted = blocks.to_vec();
            sorted.sort_by_key(|b| b.0);
            let ends = sorted
                .iter()
                .skip(1)
                .map(|b| b.0)
                .chain(std::iter::once(len));
            sorted
                .iter()
                .zip(ends)
                .map(|((start, name), end)| {
                    (0.5 * (*start + end.max(start + 1) - 1) as f64, name.clone())
                })
                .collect()
        }
        Source::Indices => (0..len)
            .step_by((len / 8).max(1))
            .map(|k| (k as f64, k.to_string()))
            .collect(),
    }
}

/// The pixel rectangle of a chart's plotting area: `(x0, x1, y0, y1)`.
fn plot_box<C: CoordTranslate>(
    chart: &ChartContext<'_, BitMapBackend<'_>, C>,
) -> (i32, i32, i32, i32) {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    (xs.start, xs.end, ys.start, ys.end)
}

/// Draws the heatmap `h` into `area`.
pub(crate) fn draw(area: &Area, h: &Heatmap) -> DrawResult {
    let square = h.rows == h.cols;
    let (rows, cols) = (h.rows.max(1) as f64, h.cols.max(1) as f64);
    let label_font = font(LABEL_SIZE);
    let width = |t: &str| text_size(area, t, &label_font).0;
    let plot_w = area
        .dim_in_pixel()
        .0
        .saturating_sub(MARGIN + LEFT + RIGHT)
        .max(1) as f64;
    let x_source = source(&h.x_ticks, &h.block_labels, square, true);
    let x_labels = axis_labels(x_source, &h.x_ticks, &h.block_labels, h.cols);
    // Names must all show; numbers (steps, indices) read well thinned.
    let names = x_labels.iter().any(|l| l.1.parse::<f64>().is_err());
    let x = ticks::x_labels(
        x_labels
            .into_iter()
            .map(|(k, text)| Tick {
                at: (k + 0.5) / cols * plot_w,
                text,
            })
            .collect(),
        width,
        f64::from(LABEL_SIZE) + 2.0,
        names,
    );
    let depth = if x.upright {
        x.ticks.iter().map(|t| width(&t.text)).fold(0.0, f64::max) as u32 + 8
    } else {
        20
    };
    let mut chart = ChartBuilder::on(area)
        .caption(h.title.as_str(), font(TITLE_SIZE))
        .margin(MARGIN)
        .margin_right(RIGHT)
        .x_label_area_size(depth + 26)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(-0.5..cols - 0.5, -0.5..rows - 0.5)
        .map_err(err)?;
    draw_mesh(
        chart
            .configure_mesh()
            .disable_mesh()
            .set_all_tick_mark_size(0)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|_| String::new()),
        &h.x_label,
        &h.y_label,
    )?;
    draw_cells(&mut chart, h)?;
    draw_boundaries(&mut chart, h, square)?;
    let plot = plot_box(&chart);
    draw_x_labels(area, plot, &x)?;
    draw_y_labels(area, plot, h, square)?;
    draw_colour_bar(area, plot, &h.scale, &h.colour_label)
}

type HeatChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The cells, row 0 at the top; non-finite values grey.
fn draw_cells(chart: &mut HeatChart, h: &Heatmap) -> DrawResult {
    let flip = (h.rows as f64) - 1.0;
    chart
        .draw_series(
            (0..h.rows)
                .flat_map(|i| (0..h.cols).map(move |j| (i, j)))
                .map(|(i, j)| {
                    let (y, x) = (flip - i as f64, j as f64);
                    let (r, g, b) = h.scale.colour(h.values[i * h.cols + j]);
                    Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        RGBColor(r, g, b).filled(),
                    )
                }),
        )
        .map_err(err)?;
    Ok(())
}

/// Lines before each boundary index: vertical always, horizontal too when square.
fn draw_boundaries(chart: &mut HeatChart, h: &Heatmap, square: bool) -> DrawResult {
    let (rows, cols) = (h.rows as f64, h.cols as f64);
    for &b in &h.boundaries {
        let x = b as f64 - 0.5;
        let mut lines = vec![vec![(x, -0.5), (x, rows - 0.5)]];
        if square {
            let y = rows - b as f64 - 0.5;
            lines.push(vec![(-0.5, y), (cols - 0.5, y)]);
        }
        chart
            .draw_series(
                lines
                    .into_iter()
                    .map(|l| PathElement::new(l, BLACK.stroke_width(1))),
            )
            .map_err(err)?;
    }
    Ok(())
}

/// The x labels under the plot, upright when laid out so, with tick marks.
fn draw_x_labels(
    area: &Area,
    (x0, _, _, y1): (i32, i32, i32, i32),
    x: &ticks::XLabels,
) -> DrawResult {
    let style = font(LABEL_SIZE);
    let upright = style.transform(FontTransform::Rotate270);
    for t in &x.ticks {
        let px = x0 + t.at.round() as i32;
        fill_rect(area, (px, y1), (px + 1, y1 + 4), BLACK)?;
        if x.upright {
            text_at(
                area,
                &t.text,
                (px, y1 + 6),
                &upright,
                HPos::Right,
                VPos::Center,
            )?;
        } else {
            text_at(area, &t.text, (px, y1 + 6), &style, HPos::Center, VPos::Top)?;
        }
    }
    Ok(())
}

/// The y labels left of the plot, thinned by the text height.
fn draw_y_labels(
    area: &Area,
    (x0, _, y0, y1): (i32, i32, i32, i32),
    h: &Heatmap,
    square: bool,
) -> DrawResult {
    let style = font(LABEL_SIZE);
    let plot_h = f64::from(y1 - y0);
    let rows = h.rows.max(1) as f64;
    let y_source = source(&h.y_ticks, &h.block_labels, square, false);
    let labels: Vec<Tick> = axis_labels(y_source, &h.y_ticks, &h.block_labels, h.rows)
        .into_iter()
        .map(|(k, text)| Tick {
            at: (k + 0.5) / rows * plot_h,
            text,
        })
        .collect();
    for t in ticks::thin(labels, |_| f64::from(LABEL_SIZE) + 2.0, 2.0) {
        let py = y0 + t.at.round() as i32;
        fill_rect(area, (x0 - 4, py), (x0, py + 1), BLACK)?;
        text_at(
            area,
            &t.text,
            (x0 - 7, py),
            &style,
            HPos::Right,
            VPos::Center,
        )?;
    }
    Ok(())
}

/// The colour bar right of the plot: the scale's whole range, five labelled
/// values (0 in the middle of a diverging scale), and what the colour means.
fn draw_colour_bar(
    area: &Area,
    (_, x1, y0, y1): (i32, i32, i32, i32),
    scale: &ColourScale,
    label: &str,
) -> DrawResult {
    let (bx0, bx1) = (x1 + 14, x1 + 30);
    let (lo, hi) = scale.range();
    let span = f64::from((y1 - y0).max(1));
    for py in y0..y1 {
        let v = hi - f64::from(py - y0) / span * (hi - lo);
        let (r, g, b) = scale.colour(v);
        fill_rect(area, (bx0, py), (bx1, py + 1), RGBColor(r, g, b))?;
    }
    let base = area.get_base_pixel();
    let rel = |p: (i32, i32)| (p.0 - base.0, p.1 - base.1);
    area.draw(&Rectangle::new(
        [rel((bx0, y0)), rel((bx1, y1))],
        RGBColor(90, 90, 90),
    ))
    .map_err(err)?;
    let style = font(LABEL_SIZE - 1);
    let mut widest = 0.0f64;
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let py = y1 - (f64::from(k) / 4.0 * span).round() as i32;
        let text = tick_text(v);
        widest = widest.max(text_size(area, &text, &style).0);
        fill_rect(area, (bx1, py), (bx1 + 4, py + 1), BLACK)?;
        text_at(area, &text, (bx1 + 6, py), &style, HPos::Left, VPos::Center)?;
    }
    let upright = font(LABEL_SIZE).transform(FontTransform::Rotate270);
    let lx = bx1 + 12 + widest.ceil() as i32;
    text_at(
        area,
        label,
        (lx, (y0 + y1) / 2),
        &upright,
        HPos::Center,
        VPos::Top,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_names_sit_at_the_middle_of_their_blocks() {
        let blocks = [
            (0, "a".to_string()),
            (4, "b".to_string()),
            (10, "c".to_string()),
        ];
        let at: Vec<f64> = axis_labels(Source::Blocks, &[], &blocks, 12)
            .iter()
            .map(|l| l.0)
            .collect();
        assert_eq!(at, vec![1.5, 6.5, 10.5]);
        assert_eq!(axis_labels(Source::Indices, &[], &blocks, 16).len(), 8);
    }

    #[test]
    fn steps_go_along_x_and_stage_names_along_y() {
        let steps = [(0, "0".to_string())];
        let blocks = [(0, "a".to_string())];
        assert_eq!(source(&steps, &blocks, true, true), Source::Explicit);
        assert_eq!(source(&steps, &blocks, true, false), Source::Blocks);
        assert_eq!(source(&steps, &blocks, false, false), Source::Explicit);
        assert_eq!(source(&[], &blocks, false, true), Source::Indices);
    }
}
