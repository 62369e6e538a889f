//! `compare` and `matrix` on transformer checkpoints (bilinear attention):
//! the exact Gaussian metric through attention (MATH.md §3, sequences) on
//! one shared geometry, per-token slices, parameter cosine and Monte-Carlo.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::json;
use tensim_core::monte_carlo::sequence_monte_carlo;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::transformer::Transformer;
use tensim_core::Par;
use tensim_io::{load_any_checkpoint, write_matrix, AnyModel};

use crate::{load, progress};

/// A transformer checkpoint and where it came from.
pub struct LoadedTransformer {
    pub path: PathBuf,
    pub model: Transformer,
    pub label: String,
}

/// Whether the first file the arguments name is a tensim transformer checkpoint.
pub fn names_transformers(args: &[PathBuf]) -> Result<bool> {
    let files = load::expand(args)?;
    let Some((first, _)) = files.first() else {
        return Ok(false);
    };
    let is_safetensors = first.extension().and_then(|e| e.to_str()) == Some("safetensors");
    if !is_safetensors || !first.is_file() {
        return Ok(false);
    }
    Ok(matches!(
        load_any_checkpoint(first).map(|c| c.model),
        Ok(AnyModel::Transformer(_))
    ))
}

fn load_one(path: &Path) -> Result<LoadedTransformer> {
    let c = load_any_checkpoint(path)?;
    let model = match c.model {
        AnyModel::Transformer(t) => t,
        AnyModel::Sequential(_) => bail!(
            "{}: a sequential (MLP) checkpoint among transformer checkpoints; compare models of one kind",
            path.display()
        ),
    };
    let label = c
        .meta
        .label
        .clone()
        .or_else(|| c.meta.step.map(|s| format!("step {s}")))
        .unwrap_or_else(|| {
            path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        });
    Ok(LoadedTransformer {
        path: path.to_path_buf(),
        model,
        label,
    })
}

/// Loads every transformer checkpoint the arguments name; directories and
/// globs are sorted by step (metadata, else the name).
pub fn load_all(args: &[PathBuf]) -> Result<Vec<LoadedTransformer>> {
    let files = load::expand(args)?;
    let bar = progress::bar(files.len() as u64, "loading");
    let loaded: Result<Vec<(LoadedTransformer, bool, Option<u64>)>> = files
        .par_iter()
        .map(|(p, sortable)| {
            let l = load_one(p)?;
            bar.inc(1);
            let step = tensim_io::step_from_name(p);
            Ok((l, *sortable, step))
        })
        .collect();
    bar.finish_and_clear();
    let mut loaded = loaded?;
    if loaded.iter().all(|(_, sortable, _)| *sortable) {
        loaded.sort_by_key(|(_, _, step)| step.unwrap_or(u64::MAX));
    }
    let out: Vec<LoadedTransformer> = loaded.into_iter().map(|(l, _, _)| l).collect();
    let first = out[0].model.shape();
    for l in &out[1..] {
        if l.model.shape() != first {
            bail!(
                "{} and {}: different transformer architectures (vocab, width, heads, context, mask or blocks); the metrics compare models of one architecture",
                out[0].path.display(),
                l.path.display()
            );
        }
    }
    Ok(out)
}

/// What `--metric` asks of transformers.
enum Metric {
    /// Total exact Gaussian cosine (`tensor` and `gaussian` both mean it here).
    Gaussian,
    /// One output token's slice.
    Slice(usize),
    /// Cosine of all parameters concatenated.
    ParameterCosine,
    /// Sampled Gaussian cosine.
    MonteCarlo,
}

fn parse_metric(name: &str) -> Result<Metric> {
    let slice = name
        .strip_prefix("gaussian-slice:")
        .or_else(|| name.strip_prefix("slice:"));
    Ok(match (name, slice) {
        (_, Some(c)) => Metric::Slice(
            c.parse()
                .with_context(|| format!("`{name}`: the slice needs a token id"))?,
        ),
        ("tensor" | "gaussian", _) => Metric::Gaussian,
        ("matrix-cosine", _) => Metric::ParameterCosine,
        ("monte-carlo", _) => Metric::MonteCarlo,
        (other, _) => bail!(
            "metric `{other}` is not available for transformer checkpoints (use gaussian, slice:<token>, matrix-cosine or monte-carlo)"
        ),
    })
}

/// Default Gaussian positions: 4 as in the paper, at most the context.
pub fn positions_for(model: &Transformer, positions: Option<usize>) -> usize {
    positions.unwrap_or(4).min(model.context()).max(1)
}

fn parameter_cosine(a: &Transformer, b: &Transformer) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.parameters().iter().zip(b.parameters().iter()) {
        for (u, v) in x.iter().zip(y) {
            ab += u * v;
            aa += u * u;
            bb += v * v;
        }
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// Bytes this process may use: the kernel's `MemAvailable`, capped by
/// `TENSIM_MEMORY_LIMIT_MIB` when set (a job's allocation on a cluster).
fn available_bytes() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024.0)
    });
    let limit = std::env::var("TENSIM_MEMORY_LIMIT_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|mib| mib * 1048576.0);
    match (meminfo, limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Refuses, before any work, a job whose estimated peak memory (the cost
/// model of the geometry) exceeds what is available.
fn check_memory(geometry: &SequenceGeometry, models: usize, first: &Path) -> Result<()> {
    let need = geometry.peak_bytes(models);
    if let Some(available) = available_bytes() {
        if need > available {
            let gib = |b: f64| b / 1073741824.0;
            bail!(
                "{}: comparing {models} transformer(s) of this size on {} Gaussian positions needs an estimated {:.2} GiB, more than the {:.2} GiB available (use fewer positions or checkpoints, or raise TENSIM_MEMORY_LIMIT_MIB)",
                first.display(),
                geometry.positions(),
                gib(need),
                gib(available)
            );
        }
    }
    Ok(())
}

fn prepare_all(
    models: &[&Transformer],
    positions: usize,
    first: &Path,
) -> Result<Vec<SequencePrepared>> {
    let geometry = Arc::new(SequenceGeometry::new(&models[0].shape(), positions)?);
    check_memory(&geometry, models.len(), first)?;
    let bar = progress::bar(models.len() as u64, "moments");
    let prepared = models
        .par_iter()
        .map(|m| {
            let p = SequencePrepared::new(m, geometry.clone());
            bar.inc(1);
            p
        })
        .collect::<Result<Vec<_>, _>>();
    bar.finish_and_clear();
    Ok(prepared?)
}

fn named(err: tensim_core::pairwise::PairError, loaded: &[LoadedTransformer]) -> anyhow::Error {
    let (i, j) = (err.i, err.j);
    anyhow::Error::new(err).context(format!(
        "comparing {} with {}",
        loaded[i].path.display(),
        loaded[j].path.display()
    ))
}

pub struct MatrixOptions<'a> {
    pub metric: &'a str,
    pub positions: Option<usize>,
    pub samples: usize,
    pub seed: u64,
    pub output: Option<&'a Path>,
    pub json: bool,
}

/// `tensim matrix` over transformer checkpoints.
pub fn matrix(args: &[PathBuf], opts: &MatrixOptions<'_>) -> Result<()> {
    let metric = parse_metric(opts.metric)?;
    let loaded = load_all(args)?;
    let models: Vec<&Transformer> = loaded.iter().map(|l| &l.model).collect();
    let positions = positions_for(models[0], opts.positions);
    let n = models.len();
    let start = Instant::now();
    let bar = progress::bar((n * (n + 1) / 2) as u64, "pairs");
    let (matrix, description) = match metric {
        Metric::Gaussian | Metric::Slice(_) => {
            let prepared = prepare_all(&models, positions, &loaded[0].path)?;
            let exactness = prepared[0].exactness().describe();
            let gram =
                GramMatrices::compute(&prepared, &|| bar.inc(1)).map_err(|e| named(e, &loaded))?;
            match metric {
                Metric::Slice(c) => {
                    if c >= models[0].vocab() {
                        bail!(
                            "token {c} is outside the vocabulary of {}",
                            models[0].vocab()
                        );
                    }
                    (
                        gram.cosine_output(c).map_err(|e| named(e, &loaded))?,
                        format!("gaussian slice of token {c} ({positions} Gaussian positions, {exactness})"),
                    )
                }
                _ => (
                    gram.cosine_total().map_err(|e| named(e, &loaded))?,
                    format!("gaussian, uncentred ({positions} Gaussian positions, {exactness})"),
                ),
            }
        }
        Metric::ParameterCosine => {
            let m = pairwise_values(&models, |a, b| Ok(vec![parameter_cosine(a, b)]), &|| {
                bar.inc(1)
            })
            .map_err(|e| named(e, &loaded))?;
            (
                m.into_iter().next().expect("one value"),
                "matrix cosine of all parameters".into(),
            )
        }
        Metric::MonteCarlo => {
            let m = pairwise_values(
                &models,
                |a, b| {
                    Ok(vec![
                        sequence_monte_carlo(a, b, positions, opts.samples, opts.seed)?.value,
                    ])
                },
                &|| bar.inc(1),
            )
            .map_err(|e| named(e, &loaded))?;
            (
                m.into_iter().next().expect("one value"),
                format!(
                    "Monte-Carlo gaussian ({} samples of {positions} positions)",
                    opts.samples
                ),
            )
        }
    };
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let labels: Vec<String> = loaded.iter().map(|l| l.label.clone()).collect();
    if let Some(path) = opts.output {
        write_matrix(path, &labels, &matrix).with_context(|| "writing the matrix")?;
    }
    if opts.json {
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| matrix[(i, j)]).collect())
            .collect();
        let doc = json!({
            "metric": opts.metric,
            "description": description,
            "kind": "transformer",
            "positions": positions,
            "files": loaded.iter().map(|l| l.path.display().to_string()).collect::<Vec<_>>(),
            "labels": labels,
            "matrix": rows,
            "output": opts.output,
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if let Some(path) = opts.output {
        eprintln!(
            "{n}×{n} {description} written to {} in {seconds:.2} s",
            path.display()
        );
    } else {
        tensim_io::matrix_file::write_csv(&mut std::io::stdout().lock(), &labels, &matrix)?;
    }
    Ok(())
}

/// `tensim compare` of two transformer checkpoints.
pub fn compare(
    a: &Path,
    b: &Path,
    positions: Option<usize>,
    samples: usize,
    seed: u64,
    json_out: bool,
) -> Result<()> {
    let loaded = load_all(&[a.to_path_buf(), b.to_path_buf()])?;
    let (ma, mb) = (&loaded[0].model, &loaded[1].model);
    let positions = positions_for(ma, positions);
    let prepared = prepare_all(&[ma, mb], positions, &loaded[0].path)?;
    let start = Instant::now();
    let sim = tensim_core::similarity(&prepared[0], &prepared[1], Par::Seq)
        .with_context(|| format!("comparing {} with {}", a.display(), b.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let exactness = prepared[0].exactness().combine(prepared[1].exactness());
    let cosine = parameter_cosine(ma, mb);
    let mc = if samples >= 2 {
        Some(sequence_monte_carlo(ma, mb, positions, samples, seed)?)
    } else {
        None
    };
    let mut ranked: Vec<(usize, f64)> = sim.per_output.iter().copied().enumerate().collect();
    ranked.sort_by(|x, y| x.1.total_cmp(&y.1));
    if json_out {
        let doc = json!({
            "a": a.display().to_string(),
            "b": b.display().to_string(),
            "kind": "transformer",
            "positions": positions,
            "values": {
                "gaussian": sim.total,
                "matrix_cosine": cosine,
                "monte_carlo": mc.map(|e| json!({"value": e.value, "std_error": e.std_error, "samples": e.samples})),
            },
            "gaussian_exact": exactness.is_exact(),
            "gaussian_exactness": exactness.describe(),
            "per_token": {"gaussian": sim.per_output},
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("a: {} ({})", a.display(), loaded[0].label);
    println!("b: {} ({})", b.display(), loaded[1].label);
    println!(
        "transformer: vocab {}, d_model {}, {} block(s), context {}; Gaussian input on {positions} positions\n",
        ma.vocab(),
        ma.d_model(),
        ma.blocks().len(),
        ma.context()
    );
    println!("{:<34} {:>10}", "metric", "value");
    println!("{}", "-".repeat(46));
    println!(
        "{:<34} {:>10.6}  ({}, {seconds:.2} s)",
        "gaussian (uncentred)",
        sim.total,
        exactness.describe()
    );
    if let Some(e) = mc {
        println!(
            "{:<34} {:>10.6}  ± {:.6} ({} samples)",
            "gaussian, Monte-Carlo", e.value, e.std_error, e.samples
        );
    }
    println!("{:<34} {:>10.6}", "matrix cosine (all parameters)", cosine);
    println!("\nleast similar output tokens (gaussian slice):");
    for (c, v) in ranked.iter().take(5) {
        println!("  token {c:>3}: {v:.6}");
    }
    Ok(())
}
