//! Matrices in parts: `matrix --resume` (finished pairs in `OUT.progress`,
//! so a killed run continues where it stopped), `matrix --shard K/N` (a
//! deterministic share of the pairs, written as a pairs file) and
//! `tensim merge` (the parts checked and assembled). Every path gives the
//! uninterrupted run's matrix bit for bit (core's [`tensim_core::pair_plan`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tensim_core::metric::{MatrixJob, Metric};
use tensim_core::pair_plan::{assemble, shard_pairs, PairPlan, PairValues};
use tensim_core::Mat;
use tensim_io::pairs_file::{self, read_pairs, write_pairs, InputsHasher, PairsHeader};

use crate::progress::JobBars;

/// Shard `k` of `count`, counted from 0 (`--shard 0/8` … `--shard 7/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard K/N with 0 ≤ K < N (e.g. 0/8 … 7/8)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, count) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || k >= count {
            return Err(bad());
        }
        Ok(Shard { k, count })
    }
}

/// What the matrix's numbers depend on: every checkpoint's bytes, the
/// spec, the metric and the options it reads.
pub struct Inputs<'a> {
    pub checkpoints: &'a [PathBuf],
    pub arch: Option<&'a Path>,
    pub inputs: Option<&'a Path>,
    pub options: String,
}

/// The hash of `inputs`, as 16 hex digits.
pub fn inputs_hash(inputs: &Inputs<'_>) -> Result<String> {
    let mut h = InputsHasher::default();
    h.field(b"tensim matrix inputs 1");
    for p in inputs.checkpoints {
        h.file(p)?;
    }
    for p in [inputs.arch, inputs.inputs].into_iter().flatten() {
        h.file(p)?;
    }
    h.field(inputs.options.as_bytes());
    Ok(h.finish())
}

/// The progress file of a run writing `out`.
pub fn progress_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".progress");
    PathBuf::from(name)
}

/// Computes the pairs of `plan` with a progress file at `progress` that a
/// killed run left (continued when its header matches) or that is created.
fn with_progress_file(
    job: &MatrixJob<'_>,
    header: &PairsHeader,
    progress: &Path,
    plan: PairPlan<'_>,
    bars: &JobBars,
) -> Result<PairValues> {
    pairs_file::with_progress_file(progress, header, plan, |plan| {
        if plan.known_count() > 0 {
            eprintln!(
                "resuming: {} pairs already in {}",
                plan.known_count(),
                progress.display()
            );
        }
        Ok(job.pair_values(bars, plan)?)
    })
}

/// The whole matrix, its finished pairs kept in `OUT.progress` until `out`
/// is written (the caller removes it then).
pub fn resumable(
    job: &MatrixJob<'_>,
    header: &PairsHeader,
    out: &Path,
    n: usize,
) -> Result<Mat<f64>> {
    let bars = JobBars::new(n);
    let values = with_progress_file(job, header, &progress_path(out), PairPlan::all(), &bars);
    bars.finish();
    Ok(assemble(job.metric(), n, &values?)?)
}

/// Shard `shard` of the pairs, written to `part` as a pairs file (resumable
/// through `part.progress` like a whole matrix).
pub fn shard(
    job: &MatrixJob<'_>,
    header: &PairsHeader,
    part: &Path,
    shard: Shard,
    n: usize,
) -> Result<usize> {
    if matches!(
        part.extension().and_then(|e| e.to_str()),
        Some("npy" | "csv")
    ) {
        bail!(
            "{}: a shard holds pair values, not a matrix; name it .pairs and build the matrix with `tensim merge`",
            part.display()
        );
    }
    let pairs = shard_pairs(n, shard.k, shard.count);
    let bars = JobBars::with_pairs(n, pairs.len());
    let progress = progress_path(part);
    let values = with_progress_file(job, header, &progress, PairPlan::all().only(pairs), &bars);
    bars.finish();
    let values = values?;
    write_pairs(part, header, &values)?;
    remove_progress(&progress)?;
    Ok(values.len())
}

pub fn remove_progress(progress: &Path) -> Result<()> {
    if progress.exists() {
        std::fs::remove_file(progress)
            .with_context(|| format!("removing {}", progress.display()))?;
    }
    Ok(())
}

/// Reads shard parts, checks that they come from one computation and cover
/// every pair exactly once, and assembles the matrix.
pub fn merge(parts: &[PathBuf]) -> Result<(PairsHeader, Mat<f64>)> {
    let first = parts.first().context("no parts to merge")?;
    let (header, mut values) = read_pairs(first)?;
    for part in &parts[1..] {
        let (h, v) = read_pairs(part)?;
        if h != header {
            bail!(
                "{} and {}: parts of different computations (checkpoints, metric or options differ)",
                first.display(),
                part.display()
            );
        }
        for (pair, x) in v.iter() {
            values.insert(pair, x.to_vec()).map_err(|_| {
                anyhow::anyhow!(
                    "{}: pair ({}, {}) is also in another part (overlapping shards)",
                    part.display(),
                    pair.0,
                    pair.1
                )
            })?;
        }
    }
    let n = header.labels.len();
    if let Some((i, j)) = values.first_missing(n) {
        bail!(
            "pair ({i}, {j}) ({} vs {}) is in none of the {} parts: a shard is missing or unfinished",
            header.labels[i],
            header.labels[j],
            parts.len()
        );
    }
    let metric: Metric = header.metric.parse()?;
    let matrix = assemble(metric, n, &values)?;
    Ok((header, matrix))
}

/// `tensim merge`: the parts' matrix written to `output` (and drawn).
pub fn run_merge(parts: &[PathBuf], output: &Path, plot: Option<&Path>) -> Result<()> {
    let (header, matrix) = merge(parts)?;
    tensim_io::write_matrix(output, &header.labels, &matrix)
        .with_context(|| "writing the matrix")?;
    if let Some(png) = plot {
        crate::plot::heatmap(png, &header.metric, &header.labels, &matrix)?;
    }
    eprintln!(
        "{}×{} {} merged from {} parts into {}",
        matrix.nrows(),
        matrix.ncols(),
        header.description,
        parts.len(),
        output.display()
    );
    Ok(())
}
