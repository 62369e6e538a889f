//! `tensim diff`: similarity of updates (differences between checkpoints)
//! from the four pairwise inner products (MATH.md §2), never forming a
//! difference tensor.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;
use tensim_core::pairwise::GramMatrices;
use tensim_core::{
    Centring, GaussianPrepared, InnerProductSpace, Mat, Model, Scalar, TensorPrepared,
};
use tensim_io::write_matrix;

use crate::load::{self, Loaded};
use crate::matrix::name_pair;
use crate::{progress, Precision};

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

fn gram<P: InnerProductSpace>(
    models: &[&Model],
    prepare: impl Fn(&Model) -> tensim_core::Result<P> + Sync,
    tick: &(dyn Fn() + Sync),
) -> Result<GramMatrices> {
    use rayon::prelude::*;
    let prepared: Vec<P> = models
        .par_iter()
        .map(|m| prepare(m))
        .collect::<Result<_, _>>()?;
    Ok(GramMatrices::compute(&prepared, tick)?)
}

fn gram_for<T: Scalar>(
    metric: &str,
    models: &[&Model],
    tick: &(dyn Fn() + Sync),
) -> Result<GramMatrices> {
    match metric {
        "tensor" => gram(models, TensorPrepared::<T>::new, tick),
        "gaussian" => gram(
            models,
            |m| GaussianPrepared::<T>::with_centring(m, Centring::Uncentred),
            tick,
        ),
        other => bail!("diff supports --metric tensor or gaussian, not `{other}`"),
    }
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
    let models: Vec<&Model> = loaded.iter().map(Loaded::model).collect();
    let bar = progress::bar((models.len() * (models.len() + 1) / 2) as u64, "pairs");
    let gram = match opts.precision {
        Precision::F64 => gram_for::<f64>(&opts.metric, &models, &|| bar.inc(1)),
        Precision::F32 => gram_for::<f32>(&opts.metric, &models, &|| bar.inc(1)),
    }
    .map_err(|e| name_pair(e, &loaded))?;
    bar.finish_and_clear();
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
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if opts.reference.is_some() {
        println!("update                                   similarity to the reference update");
        for (l, r) in labels.iter().zip(&rows) {
            println!("{l:<40} {:>9.6}", r[0]);
        }
    } else if opts.output.is_none() {
        tensim_io::matrix_file::write_csv(&mut std::io::stdout().lock(), &labels, &matrix)?;
    }
    Ok(())
}
