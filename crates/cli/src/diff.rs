//! `tensim diff`: similarity of updates (differences between checkpoints)
//! from the four pairwise inner products (MATH.md §2), never forming a
//! difference tensor.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;
use tensim_core::metric::{Metric, MetricOptions};
use tensim_core::network::Network;
use tensim_core::{Centring, Mat};
use tensim_io::write_matrix;

use crate::load::{self, Loaded};
use crate::matrix::name_files;
use crate::options::Precision;
use crate::progress;

use crate::stdout::outln;

pub struct Options {
    pub checkpoints: Vec<PathBuf>,
    pub arch: Option<PathBuf>,
    /// `tensor` or `gaussian`.
    pub metric: String,
    /// Compare every consecutive update with the update `FROM → TO`.
    pub reference: Option<(PathBuf, PathBuf)>,
    /// Restrict to one output class (slice); all outputs otherwise.
    pub class: Option<usize>,
    pub output: Option<PathBuf>,
    pub precision: Precision,
    pub json: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    let spec = load::spec(opts.arch.as_deref())?;
    let mut loaded = load::checkpoints(&opts.checkpoints, spec.as_ref())?;
    let n = loaded.len();
    if n < 2 {
        bail!("diff needs at least two checkpoints (one update)");
    }
    if let Some((from, to)) = &opts.reference {
        loaded.push(load::checkpoint(from, spec.as_ref())?);
        loaded.push(load::checkpoint(to, spec.as_ref())?);
    }
    let metric = match opts.metric.as_str() {
        "tensor" => Metric::Tensor,
        "gaussian" => Metric::Gaussian(Centring::Uncentred),
        other => bail!("diff supports --metric tensor or gaussian, not `{other}`"),
    };
    let networks: Vec<&Network> = loaded.iter().map(Loaded::network).collect();
    let options = MetricOptions {
        precision: opts.precision.into(),
        ..MetricOptions::default()
    };
    let job = metric
        .job(&networks, options)
        .map_err(|e| name_files(e, &loaded))?;
    let bars = progress::JobBars::new(networks.len());
    let gram = job.gram(&bars).map_err(|e| name_files(e, &loaded));
    bars.finish();
    let gram = gram?;
    let outputs: Vec<usize> = match opts.class {
        Some(c) if c >= gram.outputs() => bail!(
            "class {c} does not exist: the models have {} outputs",
            gram.outputs()
        ),
        Some(c) => vec![c],
        None => (0..gram.outputs()).collect(),
    };
    let mut updates: Vec<(usize, usize)> = (0..n - 1).map(|i| (i, i + 1)).collect();
    let labels: Vec<String> = (0..n - 1)
        .map(|i| format!("{} → {}", loaded[i].label(), loaded[i + 1].label()))
        .collect();
    if opts.reference.is_some() {
        updates.push((n, n + 1));
    }
    let sim = gram.update_similarity(&updates, &outputs).map_err(|e| {
        anyhow::anyhow!("{e} (an update whose two checkpoints are identical has no direction)")
    })?;
    let (matrix, labels): (Mat<f64>, Vec<String>) = if opts.reference.is_some() {
        let m = updates.len() - 1;
        (Mat::from_fn(m, 1, |u, _| sim[(u, m)]), labels)
    } else {
        (sim, labels)
    };
    if let Some(path) = &opts.output {
        if opts.reference.is_some() {
            bail!("-o writes square matrices; with --reference use --json");
        }
        write_matrix(path, &labels, &matrix)?;
    }
    let rows: Vec<Vec<f64>> = (0..matrix.nrows())
        .map(|i| (0..matrix.ncols()).map(|j| matrix[(i, j)]).collect())
        .collect();
    if opts.json {
        let doc = json!({
            "metric": opts.metric,
            "class": opts.class,
            "updates": labels,
            "reference": opts.reference.as_ref().map(|(a, b)| json!([a, b])),
            "similarity": rows,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else if opts.reference.is_some() {
        outln!("update                                   similarity to the reference update");
        for (l, r) in labels.iter().zip(&rows) {
            outln!("{l:<40} {:>9.6}", r[0]);
        }
    } else if opts.output.is_none() {
        tensim_io::matrix_file::write_csv(&mut std::io::stdout().lock(), &labels, &matrix)?;
    }
    Ok(())
}
