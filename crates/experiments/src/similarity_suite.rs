//! The matrices every checkpoint experiment computes, with timing and a
//! progress bar: tensor similarity (total and all class slices from one pass),
//! Gaussian similarity (those two resumable pair by pair), matrix cosine (all
//! three through the core's metric vocabulary, as `tensim matrix` computes
//! them), output cosine on named input sets, CKA.

use anyhow::Result;
use indicatif::ProgressBar;
use tensim_core::cka::CkaPrepared;
use tensim_core::metric::{MatrixJob, MatrixProgress, Metric, MetricOptions};
use tensim_core::network::Network;
use tensim_core::output_cosine::mean_row_cosine;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::{Centring, Mat, Model, Par};

use crate::pair_progress;
use crate::run_dir::RunDir;

/// A pairs bar as a metric job's progress.
struct PairBar<'a>(&'a ProgressBar);

impl MatrixProgress for PairBar<'_> {
    fn pair_done(&self) {
        self.0.inc(1);
    }
}

/// Runs `work` on the job of `metric` over `models` (f64, default options).
fn with_job<T>(
    metric: Metric,
    models: &[Model],
    work: impl FnOnce(MatrixJob<'_>) -> Result<T>,
) -> Result<T> {
    let networks: Vec<Network> = models.iter().cloned().map(Network::from).collect();
    let refs: Vec<&Network> = networks.iter().collect();
    work(metric.job(&refs, MetricOptions::default())?)
}

/// The Gram matrices of `metric` over `models`, resumable pair by pair
/// through the run's progress file `name` ([`crate::pair_progress`]).
fn job_gram(
    run: &RunDir,
    name: &str,
    metric: Metric,
    models: &[Model],
    bar: &ProgressBar,
) -> Result<GramMatrices> {
    let parameters = models.iter().map(Model::parameters);
    pair_progress::resumable(run, name, &metric.to_string(), parameters, |plan| {
        with_job(metric, models, |job| {
            Ok(job.gram_planned(&PairBar(bar), plan)?)
        })
    })
}

/// All class slices and the total of an inner-product metric.
pub struct SlicedMatrices {
    pub total: Mat<f64>,
    pub slices: Vec<Mat<f64>>,
}

fn sliced(gram: &GramMatrices) -> Result<SlicedMatrices> {
    Ok(SlicedMatrices {
        total: gram.cosine_total()?,
        slices: (0..gram.outputs())
            .map(|c| gram.cosine_output(c))
            .collect::<Result<_, _>>()?,
    })
}

/// Tensor similarity (weight space) in f64, with its Gram matrices kept for
/// update similarity; its pairs resume from the run's `progress/tensor.pairs`.
pub fn tensor(
    run: &RunDir,
    models: &[Model],
    bar: &ProgressBar,
) -> Result<(SlicedMatrices, GramMatrices)> {
    let gram = job_gram(run, "tensor", Metric::Tensor, models, bar)?;
    Ok((sliced(&gram)?, gram))
}

/// Gaussian functional similarity (uncentred, moment propagation) in f64;
/// its pairs resume from the run's `progress/gaussian.pairs`.
pub fn gaussian(
    run: &RunDir,
    models: &[Model],
    bar: &ProgressBar,
) -> Result<(SlicedMatrices, GramMatrices)> {
    let metric = Metric::Gaussian(Centring::Uncentred);
    let gram = job_gram(run, "gaussian", metric, models, bar)?;
    Ok((sliced(&gram)?, gram))
}

/// Cosine of all weights concatenated.
pub fn matrix_cosine(models: &[Model], bar: &ProgressBar) -> Result<Mat<f64>> {
    with_job(Metric::MatrixCosine, models, |job| {
        Ok(job.run(&PairBar(bar))?.values)
    })
}

/// Logits of every model on `inputs` (`n × d`, f64).
pub fn outputs(models: &[Model], inputs: &Mat<f64>) -> Result<Vec<Mat<f64>>> {
    use rayon::prelude::*;
    Ok(models
        .par_iter()
        .map(|m| m.forward(inputs.as_ref()))
        .collect::<Result<_, _>>()?)
}

/// Mean per-input cosine of logits (EXPERIMENTS "output cosine").
pub fn output_cosine(outputs: &[Mat<f64>], bar: &ProgressBar) -> Result<Mat<f64>> {
    let mut m = pairwise_values(
        outputs,
        |a, b| Ok(vec![mean_row_cosine(a.as_ref(), b.as_ref())?]),
        &|| bar.inc(1),
    )?;
    Ok(m.remove(0))
}

/// Linear CKA of logits.
pub fn cka(outputs: &[Mat<f64>], bar: &ProgressBar) -> Result<Mat<f64>> {
    let prepared: Vec<CkaPrepared> = outputs
        .iter()
        .map(|o| CkaPrepared::new(o.as_ref()))
        .collect::<Result<_, _>>()?;
    let mut m = pairwise_values(&prepared, |a, b| Ok(vec![a.cka(b, Par::Seq)?]), &|| {
        bar.inc(1)
    })?;
    Ok(m.remove(0))
}
