//! A grayscale image panel with square pixels, centred under its title.

use plotters::prelude::*;

use crate::panel::ImagePanel;
use crate::render::{err, font, Area, DrawResult, TITLE_SIZE};

/// Draws `img` into `area`.
pub(crate) fn draw(area: &Area, img: &ImagePanel) -> DrawResult {
    let titled = area.titled(&img.title, font(TITLE_SIZE)).map_err(err)?;
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
