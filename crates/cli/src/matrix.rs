//! `tensim matrix`: one metric over N checkpoints.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use tensim_core::pairwise::PairError;
use tensim_core::{Mat, Model};
use tensim_io::write_matrix;

use crate::load::{self, Loaded};
use crate::metric::{compute_matrix, pair_count, MatrixJob, MetricSpec};
use crate::{progress, Precision};

pub struct Options {
    pub checkpoints: Vec<PathBuf>,
    pub arch: Option<PathBuf>,
    pub metric: String,
    pub output: Option<PathBuf>,
    pub inputs: Option<PathBuf>,
    pub samples: usize,
    pub seed: u64,
    pub precision: Precision,
    pub json: bool,
}

/// Names the two files of a failed pair.
pub fn name_pair(err: anyhow::Error, loaded: &[Loaded]) -> anyhow::Error {
    let located = err.downcast_ref::<PairError>().map(|p| (p.i, p.j));
    match located {
        Some((i, j)) => err.context(format!(
            "comparing {} with {}",
            loaded[i].path.display(),
            loaded[j].path.display()
        )),
        None => err,
    }
}

pub fn run(opts: &Options) -> Result<()> {
    let spec = MetricSpec::parse(&opts.metric)?;
    if spec.needs_inputs() && opts.inputs.is_none() {
        anyhow::bail!(
            "metric `{}` needs --inputs FILE.npy (n×d inputs, f64)",
            opts.metric
        );
    }
    let arch = load::spec(opts.arch.as_deref())?;
    let loaded = load::checkpoints(&opts.checkpoints, arch.as_ref())?;
    let models: Vec<&Model> = loaded.iter().map(Loaded::model).collect();
    let inputs = match &opts.inputs {
        Some(p) => Some(load::inputs(p, models[0].input_dim())?),
        None => None,
    };
    let job = MatrixJob {
        spec,
        precision: opts.precision,
        inputs: inputs.as_ref(),
        samples: opts.samples,
        seed: opts.seed,
    };
    let bar = progress::bar(pair_count(models.len()), "pairs");
    let start = Instant::now();
    let matrix = compute_matrix(&job, &models, &|| bar.inc(1)).map_err(|e| name_pair(e, &loaded));
    bar.finish_and_clear();
    let matrix = matrix?;
    let seconds = start.elapsed().as_secs_f64();
    let labels: Vec<String> = loaded.iter().map(Loaded::label).collect();
    if let Some(path) = &opts.output {
        write_matrix(path, &labels, &matrix).with_context(|| "writing the matrix")?;
    }
    if opts.json {
        let rows: Vec<Vec<f64>> = (0..matrix.nrows())
            .map(|i| (0..matrix.ncols()).map(|j| matrix[(i, j)]).collect())
            .collect();
        let doc = json!({
            "metric": opts.metric,
            "description": spec.describe(),
            "precision": format!("{:?}", opts.precision).to_lowercase(),
            "files": loaded.iter().map(|l| l.path.display().to_string()).collect::<Vec<_>>(),
            "labels": labels,
            "matrix": rows,
            "output": opts.output,
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if let Some(path) = &opts.output {
        let (min, mean) = off_diagonal_summary(&matrix);
        eprintln!(
            "{}×{} {} written to {} in {seconds:.2} s (off-diagonal: min {min:.4}, mean {mean:.4})",
            matrix.nrows(),
            matrix.ncols(),
            spec.describe(),
            path.display()
        );
    } else {
        tensim_io::matrix_file::write_csv(&mut std::io::stdout().lock(), &labels, &matrix)?;
    }
    Ok(())
}

fn off_diagonal_summary(m: &Mat<f64>) -> (f64, f64) {
    let n = m.nrows();
    let values: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| m[(i, j)])
        .collect();
    if values.is_empty() {
        return (m[(0, 0)], m[(0, 0)]);
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    (min, values.iter().sum::<f64>() / values.len() as f64)
}
