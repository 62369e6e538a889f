//! The metrics a matrix can be computed for, and their pairwise computation.

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rayon::prelude::*;
use tensim_core::cka::CkaPrepared;
use tensim_core::monte_carlo::gaussian_inputs;
use tensim_core::output_cosine::mean_row_cosine;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::{
    weight_cosine, Centring, GaussianPrepared, InnerProductSpace, Mat, Model, Scalar,
    TensorPrepared,
};

use crate::Precision;

/// A metric named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricSpec {
    /// Tensor similarity, weight space (centred Gaussian outputs), MATH.md §2.
    Tensor,
    /// One class slice of tensor similarity.
    TensorSlice(usize),
    /// Gaussian functional similarity by moment propagation, MATH.md §3.
    Gaussian(Centring),
    /// One class slice of the Gaussian similarity (uncentred).
    GaussianSlice(usize),
    /// Cosine of all weights concatenated.
    MatrixCosine,
    /// Mean per-input cosine of logits on given inputs.
    OutputCosine,
    /// Linear CKA of logits on given inputs.
    Cka,
    /// Monte-Carlo Gaussian cosine (uncentred) on shared samples.
    MonteCarlo,
}

impl MetricSpec {
    pub fn parse(text: &str) -> Result<Self> {
        let slice = |rest: &str| -> Result<usize> {
            rest.parse().with_context(|| {
                format!("`{text}`: the class after `:` must be a non-negative integer")
            })
        };
        Ok(match text {
            "tensor" => MetricSpec::Tensor,
            "gaussian" => MetricSpec::Gaussian(Centring::Uncentred),
            "gaussian-centred" | "gaussian-centered" => MetricSpec::Gaussian(Centring::Centred),
            "matrix-cosine" => MetricSpec::MatrixCosine,
            "output-cosine" => MetricSpec::OutputCosine,
            "cka" => MetricSpec::Cka,
            "monte-carlo" => MetricSpec::MonteCarlo,
            _ => {
                if let Some(rest) = text.strip_prefix("slice:") {
                    MetricSpec::TensorSlice(slice(rest)?)
                } else if let Some(rest) = text.strip_prefix("gaussian-slice:") {
                    MetricSpec::GaussianSlice(slice(rest)?)
                } else {
                    bail!(
                        "unknown metric `{text}`; choose one of tensor, gaussian, gaussian-centred, matrix-cosine, \
                         slice:<class>, gaussian-slice:<class>, output-cosine, cka, monte-carlo"
                    )
                }
            }
        })
    }

    pub fn needs_inputs(self) -> bool {
        matches!(self, MetricSpec::OutputCosine | MetricSpec::Cka)
    }

    /// How reports name the metric and its form.
    pub fn describe(self) -> String {
        match self {
            MetricSpec::Tensor => "tensor similarity (weight space; centred Gaussian form)".into(),
            MetricSpec::TensorSlice(c) => format!("tensor similarity, class {c} slice"),
            MetricSpec::Gaussian(Centring::Uncentred) => {
                "Gaussian functional similarity (uncentred, moments)".into()
            }
            MetricSpec::Gaussian(Centring::Centred) => {
                "Gaussian functional similarity (centred, moments)".into()
            }
            MetricSpec::GaussianSlice(c) => {
                format!("Gaussian functional similarity, class {c} slice")
            }
            MetricSpec::MatrixCosine => "matrix cosine (all weights concatenated)".into(),
            MetricSpec::OutputCosine => "output cosine on the given inputs".into(),
            MetricSpec::Cka => "linear CKA of logits on the given inputs".into(),
            MetricSpec::MonteCarlo => "Monte-Carlo Gaussian cosine (uncentred)".into(),
        }
    }
}

/// Everything a matrix computation needs besides the models.
pub struct MatrixJob<'a> {
    pub spec: MetricSpec,
    pub precision: Precision,
    pub inputs: Option<&'a Mat<f64>>,
    pub samples: usize,
    pub seed: u64,
}

fn check_class(models: &[&Model], class: usize) -> Result<()> {
    let o = models[0].output_dim();
    if class >= o {
        bail!(
            "class {class} does not exist: the models have {o} outputs (classes 0..{})",
            o - 1
        );
    }
    Ok(())
}

fn prepare_all<P: Send>(
    models: &[&Model],
    f: impl Fn(&Model) -> tensim_core::Result<P> + Sync,
) -> Result<Vec<P>> {
    models
        .par_iter()
        .enumerate()
        .map(|(i, m)| f(m).with_context(|| format!("model {i}")))
        .collect()
}

fn gram<P: InnerProductSpace>(prepared: &[P], tick: &(dyn Fn() + Sync)) -> Result<GramMatrices> {
    Ok(GramMatrices::compute(prepared, tick)?)
}

fn inner_product_matrix<T: Scalar>(
    job: &MatrixJob,
    models: &[&Model],
    tick: &(dyn Fn() + Sync),
) -> Result<Mat<f64>> {
    Ok(match job.spec {
        MetricSpec::Tensor | MetricSpec::TensorSlice(_) => {
            let prepared = prepare_all(models, TensorPrepared::<T>::new)?;
            let g = gram(&prepared, tick)?;
            match job.spec {
                MetricSpec::TensorSlice(c) => g.cosine_output(c)?,
                _ => g.cosine_total()?,
            }
        }
        MetricSpec::Gaussian(centring) => {
            let prepared = prepare_all(models, |m| {
                GaussianPrepared::<T>::with_centring(m, centring)
            })?;
            gram(&prepared, tick)?.cosine_total()?
        }
        MetricSpec::GaussianSlice(c) => {
            let prepared = prepare_all(models, GaussianPrepared::<T>::new)?;
            gram(&prepared, tick)?.cosine_output(c)?
        }
        _ => unreachable!("not an inner-product metric"),
    })
}

/// Number of pairs `i ≤ j` for `n` models.
pub fn pair_count(n: usize) -> u64 {
    (n * (n + 1) / 2) as u64
}

/// The N×N matrix of one metric; `tick` is called once per pair.
pub fn compute_matrix(
    job: &MatrixJob,
    models: &[&Model],
    tick: &(dyn Fn() + Sync),
) -> Result<Mat<f64>> {
    if models.is_empty() {
        bail!("no models to compare");
    }
    if let MetricSpec::TensorSlice(c) | MetricSpec::GaussianSlice(c) = job.spec {
        check_class(models, c)?;
    }
    let first = |v: Vec<Mat<f64>>| v.into_iter().next().expect("one value per pair");
    Ok(match job.spec {
        MetricSpec::Tensor
        | MetricSpec::TensorSlice(_)
        | MetricSpec::Gaussian(_)
        | MetricSpec::GaussianSlice(_) => match job.precision {
            Precision::F64 => inner_product_matrix::<f64>(job, models, tick)?,
            Precision::F32 => inner_product_matrix::<f32>(job, models, tick)?,
        },
        MetricSpec::MatrixCosine => first(pairwise_values(
            models,
            |a, b| Ok(vec![weight_cosine(a, b)?.all]),
            tick,
        )?),
        MetricSpec::OutputCosine => {
            let x = job
                .inputs
                .context("output-cosine needs --inputs FILE.npy")?;
            let outputs = prepare_all(models, |m| m.forward(x.as_ref()))?;
            first(pairwise_values(
                &outputs,
                |a, b| Ok(vec![mean_row_cosine(a.as_ref(), b.as_ref())?]),
                tick,
            )?)
        }
        MetricSpec::Cka => {
            let x = job.inputs.context("cka needs --inputs FILE.npy")?;
            let acts = prepare_all(models, |m| CkaPrepared::of_outputs(m, x.as_ref()))?;
            first(pairwise_values(
                &acts,
                |a, b| Ok(vec![a.cka(b, tensim_core::Par::Seq)?]),
                tick,
            )?)
        }
        MetricSpec::MonteCarlo => {
            if job.samples < 2 {
                bail!("monte-carlo needs --samples of at least 2");
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(job.seed);
            let x = gaussian_inputs(job.samples, models[0].input_dim(), &mut rng);
            let outputs = prepare_all(models, |m| m.forward(x.as_ref()))?;
            let flat_cosine = |a: &Mat<f64>, b: &Mat<f64>| -> tensim_core::Result<Vec<f64>> {
                if a.shape() != b.shape() {
                    return Err(tensim_core::Error::Mismatch {
                        what: "output dimension",
                        a: a.ncols().to_string(),
                        b: b.ncols().to_string(),
                    });
                }
                let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
                for j in 0..a.ncols() {
                    for i in 0..a.nrows() {
                        ab += a[(i, j)] * b[(i, j)];
                        aa += a[(i, j)] * a[(i, j)];
                        bb += b[(i, j)] * b[(i, j)];
                    }
                }
                Ok(vec![tensim_core::similarity::cosine_of(
                    ab,
                    aa,
                    bb,
                    || "a model's output".into(),
                )?])
            };
            first(pairwise_values(&outputs, flat_cosine, tick)?)
        }
    })
}
