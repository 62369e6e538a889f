//! Loading checkpoints and input files for the commands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rayon::prelude::*;
use tensim_core::{Mat, Model};
use tensim_io::{load_checkpoint, read_matrix, Checkpoint};

use crate::progress;

/// A checkpoint with the path it came from and a short label for tables.
pub struct Loaded {
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
}

impl Loaded {
    pub fn model(&self) -> &Model {
        &self.checkpoint.model
    }

    /// `label` metadata, else `step N`, else the file stem.
    pub fn label(&self) -> String {
        let meta = &self.checkpoint.meta;
        if let Some(l) = &meta.label {
            return l.clone();
        }
        if let Some(s) = meta.step {
            return format!("step {s}");
        }
        self.path.file_stem().map_or_else(
            || self.path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    }

    /// One line: architecture and where the checkpoint sits in training.
    pub fn describe(&self) -> String {
        let arch = self.model().architecture();
        let layers: Vec<String> = arch
            .layers
            .iter()
            .map(|l| match *l {
                tensim_core::LayerShape::Linear { input, output, .. } => {
                    format!("linear {input}→{output}")
                }
                tensim_core::LayerShape::Bilinear {
                    input,
                    hidden,
                    output,
                    residual_scale,
                    ..
                } if residual_scale < 1.0 => {
                    format!("bilinear {input}→{hidden}→{output} (residual s={residual_scale})")
                }
                tensim_core::LayerShape::Bilinear {
                    input,
                    hidden,
                    output,
                    ..
                } => {
                    format!("bilinear {input}→{hidden}→{output}")
                }
            })
            .collect();
        let meta = &self.checkpoint.meta;
        let mut where_ = Vec::new();
        if let Some(s) = meta.step {
            where_.push(format!("step {s}"));
        }
        if let Some(p) = &meta.phase {
            where_.push(format!("phase {p}"));
        }
        let suffix = if where_.is_empty() {
            String::new()
        } else {
            format!(" [{}]", where_.join(", "))
        };
        format!("{}{suffix}", layers.join(" → "))
    }
}

/// Loads one checkpoint.
pub fn checkpoint(path: &Path) -> Result<Loaded> {
    Ok(Loaded {
        path: path.to_path_buf(),
        checkpoint: load_checkpoint(path)?,
    })
}

/// Loads many checkpoints in parallel with a progress bar; the first failure wins.
pub fn checkpoints(paths: &[PathBuf]) -> Result<Vec<Loaded>> {
    let bar = progress::bar(paths.len() as u64, "loading");
    let loaded = paths
        .par_iter()
        .map(|p| {
            let l = checkpoint(p);
            bar.inc(1);
            l
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    loaded
}

/// Reads an `n × d` input matrix (`.npy` of f64, or `.csv`) and checks its width.
pub fn inputs(path: &Path, dim: usize) -> Result<Mat<f64>> {
    let (_, m) = read_matrix(path)?;
    if m.ncols() != dim {
        bail!(
            "{}: inputs have {} columns but the models take {dim} inputs",
            path.display(),
            m.ncols()
        );
    }
    if let Some(bad) = (0..m.ncols())
        .flat_map(|j| (0..m.nrows()).map(move |i| (i, j)))
        .find(|&(i, j)| !m[(i, j)].is_finite())
    {
        bail!(
            "{}: input row {}, column {} is not finite",
            path.display(),
            bad.0,
            bad.1
        );
    }
    Ok(m)
}
