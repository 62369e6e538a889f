//! `tensim matrix`: one metric over N checkpoints of either kind, through the
//! core's metric vocabulary ([`tensim_core::metric`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use tensim_core::metric::{MatrixJob, Metric, MetricError, MetricOptions};
use tensim_core::network::Network;
use tensim_core::Mat;
use tensim_io::pairs_file::PairsHeader;
use tensim_io::write_matrix;

use crate::load::{self, Loaded};
use crate::matrix_parts::{self, Shard};
use crate::options::MetricArgs;
use crate::{memory, progress};

use crate::stdout::outln;

pub struct Options {
    pub checkpoints: Vec<PathBuf>,
    pub arch: Option<PathBuf>,
    pub metric: String,
    pub output: Option<PathBuf>,
    /// A heatmap PNG of the matrix.
    pub plot: Option<PathBuf>,
    pub args: MetricArgs,
    pub json: bool,
    /// Keep finished pairs in `OUTPUT.progress` and continue from it.
    pub resume: bool,
    /// Compute one shard of the pairs into a pairs file.
    pub shard: Option<Shard>,
}

/// Names the files a metric error is about: the pair that failed, or the
/// model that does not fit (beside the first, which set the job's shape).
pub fn name_files(err: MetricError, loaded: &[Loaded]) -> anyhow::Error {
    let path = |i: usize| loaded[i].path.display().to_string();
    match err {
        MetricError::Pair(p) => {
            let context = format!("comparing {} with {}", path(p.i), path(p.j));
            anyhow::Error::new(p).context(context)
        }
        MetricError::Model { index, source } if index > 0 => {
            anyhow::anyhow!("{} and {}: {source}", path(0), path(index))
        }
        MetricError::Model { index, source } => anyhow::anyhow!("{}: {source}", path(index)),
        MetricError::Job(e) => e.into(),
    }
}

/// Reads `--inputs` for sequential networks (transformers take none).
pub fn inputs_for(path: Option<&PathBuf>, first: &Loaded) -> Result<Option<Mat<f64>>> {
    let Some(p) = path else { return Ok(None) };
    match first.network() {
        Network::Sequential(m) => Ok(Some(load::inputs(p, m.input_dim())?)),
        Network::Transformer(_) => bail!(
            "{}: --inputs applies to sequential models; transformers are compared on Gaussian sequences (--positions)",
            first.path.display()
        ),
    }
}

pub fn run(opts: &Options) -> Result<()> {
    let metric: Metric = opts.metric.parse()?;
    let arch = load::spec(opts.arch.as_deref())?;
    let loaded = load::checkpoints(&opts.checkpoints, arch.as_ref())?;
    let networks: Vec<&Network> = loaded.iter().map(Loaded::network).collect();
    let args = &opts.args;
    let inputs = inputs_for(args.inputs.as_ref(), &loaded[0])?;
    let options = MetricOptions {
        precision: args.precision.into(),
        inputs: inputs.as_ref().map(Mat::as_ref),
        samples: args.samples,
        seed: args.seed,
        positions: args.positions,
    };
    let job = metric
        .job(&networks, options)
        .map_err(|e| name_files(e, &loaded))?;
    if let (Some(need), Some(positions)) = (job.peak_bytes(), job.positions()) {
        memory::check(need, networks.len(), positions, &loaded[0].path)?;
    }
    let labels: Vec<String> = loaded.iter().map(Loaded::label).collect();
    let start = Instant::now();
    let (matrix, description) = if opts.resume || opts.shard.is_some() {
        let Some(out) = &opts.output else {
            bail!("--resume and --shard keep their progress beside the output: give -o");
        };
        // The files read (a directory argument stands for its checkpoints).
        let files: Vec<PathBuf> = loaded.iter().map(|l| l.path.clone()).collect();
        let header = PairsHeader {
            hash: matrix_parts::inputs_hash(&hash_inputs(opts, &files, metric, &job))?,
            metric: metric.to_string(),
            description: job.description(),
            labels: labels.clone(),
        };
        let n = networks.len();
        if let Some(shard) = opts.shard {
            let pairs = matrix_parts::shard(&job, &header, out, shard, n)
                .map_err(|e| name_metric_error(e, &loaded))?;
            eprintln!(
                "shard {}/{}: {pairs} pairs written to {} in {:.2} s; `tensim merge` the parts",
                shard.k,
                shard.count,
                out.display(),
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let matrix = matrix_parts::resumable(&job, &header, out, n)
            .map_err(|e| name_metric_error(e, &loaded))?;
        (matrix, job.description())
    } else {
        let bars = progress::JobBars::new(networks.len());
        let result = job.run(&bars).map_err(|e| name_files(e, &loaded));
        bars.finish();
        let result = result?;
        (result.values, result.description)
    };
    let seconds = start.elapsed().as_secs_f64();
    if let Some(path) = &opts.output {
        write_matrix(path, &labels, &matrix).with_context(|| "writing the matrix")?;
        if opts.resume {
            matrix_parts::remove_progress(&matrix_parts::progress_path(path))?;
        }
    }
    if let Some(path) = &opts.plot {
        let title = match job.positions() {
            Some(p) => format!("{} ({p} Gaussian positions)", opts.metric),
            None => opts.metric.clone(),
        };
        crate::plot::heatmap(path, &title, &labels, &matrix)?;
    }
    if opts.json {
        let rows: Vec<Vec<f64>> = (0..matrix.nrows())
            .map(|i| (0..matrix.ncols()).map(|j| matrix[(i, j)]).collect())
            .collect();
        let doc = json!({
            "metric": opts.metric,
            "description": description,
            "kind": networks[0].kind().name(),
            "precision": format!("{:?}", job.precision()).to_lowercase(),
            "positions": job.positions(),
            "files": loaded.iter().map(|l| l.path.display().to_string()).collect::<Vec<_>>(),
            "labels": labels,
            "matrix": rows,
            "output": opts.output,
            "seconds": seconds,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else if let Some(path) = &opts.output {
        let (min, mean) = off_diagonal_summary(&matrix);
        eprintln!(
            "{}×{} {description} written to {} in {seconds:.2} s (off-diagonal: min {min:.4}, mean {mean:.4})",
            matrix.nrows(),
            matrix.ncols(),
            path.display()
        );
    } else {
        tensim_io::matrix_file::write_csv(&mut std::io::stdout().lock(), &labels, &matrix)?;
    }
    Ok(())
}

/// A metric error inside an anyhow chain, with its files named.
fn name_metric_error(e: anyhow::Error, loaded: &[Loaded]) -> anyhow::Error {
    match e.downcast::<MetricError>() {
        Ok(m) => name_files(m, loaded),
        Err(e) => e,
    }
}

/// What the matrix's numbers depend on, for the progress file's hash.
fn hash_inputs<'a>(
    opts: &'a Options,
    files: &'a [PathBuf],
    metric: Metric,
    job: &MatrixJob<'_>,
) -> matrix_parts::Inputs<'a> {
    let args = &opts.args;
    let mut options = format!(
        "metric {metric}; precision {:?}; positions {:?}",
        job.precision(),
        job.positions()
    );
    if metric == Metric::MonteCarlo {
        options.push_str(&format!("; samples {}; seed {}", args.samples, args.seed));
    }
    matrix_parts::Inputs {
        checkpoints: files,
        arch: opts.arch.as_deref(),
        inputs: args.inputs.as_deref().filter(|_| metric.needs_inputs()),
        options,
    }
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
