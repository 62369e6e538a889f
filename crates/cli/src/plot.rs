//! `tensim plot` and `matrix --plot`: a similarity matrix as a heatmap, drawn
//! by the renderer and colour scale of the experiments' figures, with the
//! checkpoints' labels (steps) on both axes.

use std::path::Path;

use anyhow::{Context, Result};
use tensim_core::Mat;
use tensim_experiments::figures::similarity_heatmap;
use tensim_plot::{render_panel, Panel};

/// At most this many labelled ticks per axis.
const MOST_TICKS: usize = 12;

/// Writes `m` as a heatmap PNG at `path`, titled `title`, labelled by
/// `labels` (one per row; indices when empty).
pub fn heatmap(path: &Path, title: &str, labels: &[String], m: &Mat<f64>) -> Result<()> {
    let ticks = thinned_ticks(labels);
    let panel = match similarity_heatmap(title.to_string(), m, &[], &[]) {
        Panel::Heatmap(h) => Panel::Heatmap(tensim_plot::Heatmap {
            x_ticks: ticks.clone(),
            y_ticks: ticks,
            ..h
        }),
        other => other,
    };
    render_panel(&panel, path, (760, 640))
        .with_context(|| format!("{}: writing the heatmap", path.display()))
}

/// Every k-th label (`step 1000` shortened to `1000`) so that at most
/// [`MOST_TICKS`] remain, the first always among them.
fn thinned_ticks(labels: &[String]) -> Vec<(usize, String)> {
    let every = labels.len().div_ceil(MOST_TICKS).max(1);
    labels
        .iter()
        .enumerate()
        .step_by(every)
        .map(|(i, l)| (i, l.strip_prefix("step ").unwrap_or(l).to_string()))
        .collect()
}

/// `tensim plot MATRIX -o PNG`: a matrix written by `tensim matrix` (CSV
/// with labels, or NPY) as a heatmap.
pub fn run(matrix: &Path, output: &Path, title: Option<&str>) -> Result<()> {
    let (labels, m) = tensim_io::read_matrix(matrix)
        .with_context(|| format!("{}: reading the matrix", matrix.display()))?;
    let name = matrix
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    heatmap(output, title.unwrap_or(&name), &labels, &m)?;
    eprintln!(
        "{}×{} heatmap written to {}",
        m.nrows(),
        m.ncols(),
        output.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_thinned_to_at_most_twelve_and_keep_the_first() {
        let labels: Vec<String> = (0..30).map(|s| format!("step {}", s * 250)).collect();
        let ticks = thinned_ticks(&labels);
        assert!(ticks.len() <= MOST_TICKS, "{}", ticks.len());
        assert_eq!(ticks[0], (0, "0".to_string()));
        assert_eq!(ticks[1], (3, "750".to_string()));
        assert!(thinned_ticks(&[]).is_empty());
    }
}
