//! Loading checkpoints and input files for the commands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use tensim_core::network::Network;
use tensim_core::transformer::Transformer;
use tensim_core::{Mat, Model};
use tensim_io::{load_models, read_matrix, step_from_name, ArchSpec, Checkpoint};

use crate::progress;

/// A checkpoint with the path it came from and a short label for tables.
pub struct Loaded {
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
}

impl Loaded {
    /// The checkpoint's network, of either kind.
    pub fn network(&self) -> &Network {
        &self.checkpoint.network
    }

    /// The sequential model, or an error naming the file when it holds a transformer.
    pub fn model(&self) -> Result<&Model> {
        self.network()
            .as_sequential()
            .with_context(|| self.path.display().to_string())
    }

    /// The transformer, or an error naming the file when it holds a sequential model.
    pub fn transformer(&self) -> Result<&Transformer> {
        self.network()
            .as_transformer()
            .with_context(|| self.path.display().to_string())
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
        let what = match self.network() {
            Network::Sequential(m) => describe_layers(m),
            Network::Transformer(t) => describe_transformer(t),
        };
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
        format!("{what}{suffix}")
    }
}

/// Widths, heads and each distinct block of a transformer, e.g.
/// `transformer: vocab 4096 → 4096 logits, d_model 256, 8×32 heads, context
/// 256, 2 × [attention (bias q/k; additive residual x + 0.35·f(x))]`.
fn describe_transformer(t: &Transformer) -> String {
    let s = t.shape();
    let mut blocks: Vec<(usize, String)> = Vec::new();
    for b in &s.blocks {
        let d = b.describe();
        match blocks.last_mut() {
            Some((count, last)) if *last == d => *count += 1,
            _ => blocks.push((1, d)),
        }
    }
    let blocks: Vec<String> = blocks
        .into_iter()
        .map(|(count, d)| format!("{count} × [{d}]"))
        .collect();
    format!(
        "transformer: vocab {} → {} logits, d_model {}, {}×{} heads, context {}, {}",
        s.vocab,
        s.outputs,
        s.d_model,
        s.heads,
        s.head_dim,
        s.context,
        blocks.join(", ")
    )
}

/// The layers of a sequential model, `linear 784→64 → bilinear 64→64→10`.
fn describe_layers(m: &Model) -> String {
    let layers: Vec<String> = m
        .architecture()
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
                residual,
                ..
            } => match residual {
                tensim_core::Residual::None => format!("bilinear {input}→{hidden}→{output}"),
                r => format!("bilinear {input}→{hidden}→{output} ({})", r.describe()),
            },
        })
        .collect();
    layers.join(" → ")
}

/// Reads the `--arch` spec, if given.
pub fn spec(path: Option<&Path>) -> Result<Option<ArchSpec>> {
    Ok(match path {
        Some(p) => Some(ArchSpec::from_file(p)?),
        None => None,
    })
}

/// Loads one file that must hold exactly one checkpoint.
pub fn checkpoint(path: &Path, spec: Option<&ArchSpec>) -> Result<Loaded> {
    let mut all = load_models(path, spec)?;
    if all.len() != 1 {
        bail!(
            "{}: holds {} checkpoints (a step → state dict file); use `tensim matrix` or `tensim convert`",
            path.display(),
            all.len()
        );
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        checkpoint: all.remove(0),
    })
}

const CHECKPOINT_EXTENSIONS: [&str; 5] = ["safetensors", "pt", "pth", "bin", "npz"];

/// Files named by the arguments: files as given; a directory's checkpoint
/// files and a glob pattern's matches sorted by step (metadata or name).
pub fn expand(args: &[PathBuf]) -> Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        if arg.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(arg)
                .with_context(|| format!("reading directory {}", arg.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| CHECKPOINT_EXTENSIONS.contains(&e))
                })
                .collect();
            if files.is_empty() {
                bail!(
                    "{}: no checkpoint files (*.{}) in this directory",
                    arg.display(),
                    CHECKPOINT_EXTENSIONS.join(", *.")
                );
            }
            files.sort();
            out.extend(files.into_iter().map(|f| (f, true)));
        } else if !arg.exists() && text.contains(['*', '?', '[']) {
            let mut files: Vec<PathBuf> = glob::glob(&text)
                .with_context(|| format!("bad pattern {text}"))?
                .filter_map(std::result::Result::ok)
                .collect();
            if files.is_empty() {
                bail!("{text}: the pattern matches no file");
            }
            files.sort();
            out.extend(files.into_iter().map(|f| (f, true)));
        } else {
            out.push((arg.clone(), false));
        }
    }
    Ok(out)
}

/// Loads every checkpoint the arguments name (files, directories, globs), in
/// parallel with a progress bar. Checkpoints from a directory, a glob or a
/// step → state dict file are ordered by step; explicit files keep their order.
pub fn checkpoints(args: &[PathBuf], spec: Option<&ArchSpec>) -> Result<Vec<Loaded>> {
    let files = expand(args)?;
    let bar = progress::bar(files.len() as u64, "loading");
    let loaded: Result<Vec<Vec<(Loaded, bool)>>> = files
        .par_iter()
        .map(|(p, sort)| {
            let models = load_models(p, spec)?;
            let many = models.len() > 1;
            bar.inc(1);
            Ok(models
                .into_iter()
                .map(|checkpoint| {
                    (
                        Loaded {
                            path: p.clone(),
                            checkpoint,
                        },
                        *sort || many,
                    )
                })
                .collect())
        })
        .collect();
    bar.finish_and_clear();
    let loaded: Vec<(Loaded, bool)> = loaded?.into_iter().flatten().collect();
    // Sort each maximal run of sortable entries by step; explicit files stay put.
    let mut out: Vec<Loaded> = Vec::with_capacity(loaded.len());
    let mut run: Vec<Loaded> = Vec::new();
    let step_of = |l: &Loaded| {
        l.checkpoint
            .meta
            .step
            .or_else(|| step_from_name(&l.path))
            .unwrap_or(u64::MAX)
    };
    for (l, sortable) in loaded {
        if sortable {
            run.push(l);
        } else {
            run.sort_by_key(step_of);
            out.append(&mut run);
            out.push(l);
        }
    }
    run.sort_by_key(step_of);
    out.append(&mut run);
    Ok(out)
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
