//! The metric vocabulary: every similarity tensim computes, by name, for any
//! [`Network`] kind it applies to, as one N×N matrix over checkpoints.
//!
//! A metric is parsed from its name ([`Metric::from_str`]), printed back by
//! [`std::fmt::Display`], described for reports ([`Metric::describe`]) and
//! checked against a network kind ([`Metric::applies_to`]). A
//! [`MatrixJob`] is the problem as data: the metric, the networks and the
//! options, validated once ([`Metric::job`]); its cost can be read before it
//! runs ([`MatrixJob::peak_bytes`]) and [`MatrixJob::run`] computes it.
//!
//! | name | sequential | transformer | MATH.md |
//! |---|---|---|---|
//! | `tensor`, `slice:<c>` | tensor similarity, class slice | exact Gaussian (uncentred), token slice | §2, §3 |
//! | `gaussian`, `gaussian-slice:<c>` | Gaussian by moments | exact Gaussian through attention | §3 |
//! | `gaussian-centred` | centred Gaussian | — | §3 |
//! | `matrix-cosine` | cosine of all weights | cosine of all parameters | §4 |
//! | `output-cosine`, `cka` | on given inputs | — | §4 |
//! | `monte-carlo` | sampled Gaussian cosine | sampled over sequences | §4 |
//!
//! ```
//! use tensim_core::metric::{Metric, MetricOptions};
//! use tensim_core::network::{Network, NetworkKind};
//! use tensim_core::{Architecture, LayerShape, Residual};
//!
//! let metric: Metric = "slice:2".parse().unwrap();
//! assert_eq!(metric.to_string(), "slice:2");
//! assert!(metric.applies_to(NetworkKind::Transformer));
//! assert!(!"cka".parse::<Metric>().unwrap().applies_to(NetworkKind::Transformer));
//!
//! let arch = Architecture {
//!     layers: vec![LayerShape::Bilinear {
//!         input: 6, hidden: 5, output: 3,
//!         left_bias: false, right_bias: false, down_bias: false,
//!         residual: Residual::None,
//!     }],
//! };
//! let nets: Vec<Network> = (0..3).map(|s| arch.random_model(s).unwrap().into()).collect();
//! let refs: Vec<&Network> = nets.iter().collect();
//! let m = Metric::Tensor.job(&refs, MetricOptions::default()).unwrap().run(&()).unwrap();
//! assert!((m.values[(1, 1)] - 1.0).abs() < 1e-12);
//! assert_eq!(m.values[(0, 2)], m.values[(2, 0)]);
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use faer::{Mat, MatRef};
use rand::SeedableRng;
use rayon::prelude::*;

use crate::cka::CkaPrepared;
use crate::error::Error;
use crate::gaussian::{Centring, GaussianPrepared};
use crate::model::Model;
use crate::monte_carlo::{gaussian_inputs, sequence_monte_carlo};
use crate::network::{Network, NetworkKind};
use crate::output_cosine::mean_row_cosine;
use crate::pair_plan::{assemble, planned_values, scaled_values, PairPlan, PairValues};
use crate::pairwise::{GramMatrices, PairError};
use crate::scalar::Scalar;
use crate::sequence::{exactness_of, SequenceGeometry, SequencePrepared};
use crate::similarity::{similarity, CosineSums, Similarity};
use crate::tensor::TensorPrepared;
use crate::transformer::Transformer;
use crate::weight_cosine::{parameter_cosine, weight_cosine};

/// Floating-point type the inner-product metrics run in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Reference path.
    #[default]
    F64,
    /// Fast path (normalised, never overflows).
    F32,
}

/// A metric, by name (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Tensor similarity, weight space (centred Gaussian outputs), MATH.md §2.
    Tensor,
    /// One class (or token) slice of tensor similarity.
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

/// The names [`Metric::from_str`] accepts, for help texts.
pub const METRIC_NAMES: &str = "tensor, gaussian, gaussian-centred, matrix-cosine, slice:<class>, \
     gaussian-slice:<class>, output-cosine, cka, monte-carlo";

impl FromStr for Metric {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let class = |rest: &str| {
            rest.parse().map_err(|_| Error::BadSliceClass {
                name: text.to_string(),
            })
        };
        Ok(match text {
            "tensor" => Metric::Tensor,
            "gaussian" => Metric::Gaussian(Centring::Uncentred),
            "gaussian-centred" | "gaussian-centered" => Metric::Gaussian(Centring::Centred),
            "matrix-cosine" => Metric::MatrixCosine,
            "output-cosine" => Metric::OutputCosine,
            "cka" => Metric::Cka,
            "monte-carlo" => Metric::MonteCarlo,
            _ => {
                if let Some(rest) = text.strip_prefix("slice:") {
                    Metric::TensorSlice(class(rest)?)
                } else if let Some(rest) = text.strip_prefix("gaussian-slice:") {
                    Metric::GaussianSlice(class(rest)?)
                } else {
                    return Err(Error::UnknownMetric {
                        name: text.to_string(),
                    });
                }
            }
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Tensor => f.write_str("tensor"),
            Metric::TensorSlice(c) => write!(f, "slice:{c}"),
            Metric::Gaussian(Centring::Uncentred) => f.write_str("gaussian"),
            Metric::Gaussian(Centring::Centred) => f.write_str("gaussian-centred"),
            Metric::GaussianSlice(c) => write!(f, "gaussian-slice:{c}"),
            Metric::MatrixCosine => f.write_str("matrix-cosine"),
            Metric::OutputCosine => f.write_str("output-cosine"),
            Metric::Cka => f.write_str("cka"),
            Metric::MonteCarlo => f.write_str("monte-carlo"),
        }
    }
}

impl Metric {
    /// Whether the metric is defined for networks of `kind`.
    pub fn applies_to(self, kind: NetworkKind) -> bool {
        match kind {
            NetworkKind::Sequential => true,
            NetworkKind::Transformer => !matches!(
                self,
                Metric::Gaussian(Centring::Centred) | Metric::OutputCosine | Metric::Cka
            ),
        }
    }

    /// Whether the metric is a cosine of an inner product of prepared models
    /// (`tensor`, `gaussian` and their slices), with a Gram matrix
    /// ([`MatrixJob::gram`]) that update similarity can read.
    pub fn is_inner_product(self) -> bool {
        matches!(
            self,
            Metric::Tensor
                | Metric::TensorSlice(_)
                | Metric::Gaussian(_)
                | Metric::GaussianSlice(_)
        )
    }

    /// Whether the metric needs input data (`n × d_in`).
    pub fn needs_inputs(self) -> bool {
        matches!(self, Metric::OutputCosine | Metric::Cka)
    }

    /// The output slice the metric reads, if it is a slice.
    pub fn slice(self) -> Option<usize> {
        match self {
            Metric::TensorSlice(c) | Metric::GaussianSlice(c) => Some(c),
            _ => None,
        }
    }

    /// How reports name the metric and its form (for sequential networks;
    /// a transformer job's [`MetricMatrix::description`] adds positions and
    /// exactness).
    pub fn describe(self) -> String {
        match self {
            Metric::Tensor => "tensor similarity (weight space; centred Gaussian form)".into(),
            Metric::TensorSlice(c) => format!("tensor similarity, class {c} slice"),
            Metric::Gaussian(Centring::Uncentred) => {
                "Gaussian functional similarity (uncentred, moments)".into()
            }
            Metric::Gaussian(Centring::Centred) => {
                "Gaussian functional similarity (centred, moments)".into()
            }
            Metric::GaussianSlice(c) => {
                format!("Gaussian functional similarity, class {c} slice")
            }
            Metric::MatrixCosine => "matrix cosine (all weights concatenated)".into(),
            Metric::OutputCosine => "output cosine on the given inputs".into(),
            Metric::Cka => "linear CKA of logits on the given inputs".into(),
            Metric::MonteCarlo => "Monte-Carlo Gaussian cosine (uncentred)".into(),
        }
    }
}

/// Everything a matrix computation needs besides the networks.
#[derive(Clone, Copy, Debug)]
pub struct MetricOptions<'a> {
    /// Precision of the inner-product metrics (sequential networks).
    pub precision: Precision,
    /// Inputs (`n × d_in`) for `output-cosine` and `cka`.
    pub inputs: Option<MatRef<'a, f64>>,
    /// Monte-Carlo samples.
    pub samples: usize,
    /// Monte-Carlo seed.
    pub seed: u64,
    /// Gaussian input positions for transformers (default 4, at most the context).
    pub positions: Option<usize>,
}

impl Default for MetricOptions<'_> {
    fn default() -> Self {
        MetricOptions {
            precision: Precision::F64,
            inputs: None,
            samples: 20_000,
            seed: 0,
            positions: None,
        }
    }
}

/// Why a matrix could not be computed, with the model or pair it is about.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// The job itself (a metric that does not apply, a missing input, …).
    #[error(transparent)]
    Job(#[from] Error),
    /// One network does not fit the job or could not be prepared.
    #[error("model {index}: {source}")]
    Model {
        /// The network's position in the job's list, counted from 0.
        index: usize,
        /// Why it does not fit or failed to prepare.
        source: Error,
    },
    /// One pair failed.
    #[error(transparent)]
    Pair(#[from] PairError),
}

/// Progress of a running job; every method defaults to nothing.
pub trait MatrixProgress: Sync {
    /// One network's per-model work is done.
    fn model_prepared(&self) {}
    /// One pair `i ≤ j` is done.
    fn pair_done(&self) {}
}

impl MatrixProgress for () {}

/// A computed matrix and what it is.
#[derive(Clone, Debug)]
pub struct MetricMatrix {
    /// Symmetric `N × N` values.
    pub values: Mat<f64>,
    /// The metric and its form, for reports.
    pub description: String,
}

/// A validated matrix computation: one metric over networks of one kind.
pub struct MatrixJob<'a> {
    metric: Metric,
    networks: Vec<&'a Network>,
    options: MetricOptions<'a>,
    /// Transformers: the Gaussian positions and, for the exact metrics, the
    /// shared geometry.
    sequence: Option<(usize, Option<Arc<SequenceGeometry>>)>,
}

/// Default Gaussian positions of a transformer: 4 as in the paper, at most
/// the context.
pub fn positions_for(model: &Transformer, positions: Option<usize>) -> usize {
    positions.unwrap_or(4).min(model.context()).max(1)
}

impl Metric {
    /// Checks that the metric applies to `networks` (one kind, one shape for
    /// transformers, classes in range, inputs and samples present) and, for
    /// the exact transformer metrics, builds their shared geometry.
    pub fn job<'a>(
        self,
        networks: &[&'a Network],
        options: MetricOptions<'a>,
    ) -> Result<MatrixJob<'a>, MetricError> {
        let first = *networks.first().ok_or(Error::NoModels)?;
        let kind = first.kind();
        for (index, n) in networks.iter().enumerate() {
            if n.kind() != kind {
                return Err(MetricError::Model {
                    index,
                    source: Error::WrongKind {
                        expected: kind,
                        found: n.kind(),
                    },
                });
            }
        }
        if !self.applies_to(kind) {
            return Err(Error::NotApplicable {
                metric: self.to_string(),
                kind,
            }
            .into());
        }
        self.check_options(first, &options)?;
        let sequence = match first {
            Network::Sequential(_) => None,
            Network::Transformer(t) => Some(self.sequence_setup(t, networks, &options)?),
        };
        Ok(MatrixJob {
            metric: self,
            networks: networks.to_vec(),
            options,
            sequence,
        })
    }

    fn check_options(self, first: &Network, options: &MetricOptions<'_>) -> Result<(), Error> {
        if let Some(c) = self.slice() {
            let o = first.output_dim();
            if c >= o {
                return Err(Error::NoSuchOutput {
                    index: c,
                    outputs: o,
                    kind: first.kind(),
                });
            }
        }
        if self.needs_inputs() && options.inputs.is_none() {
            return Err(Error::MissingInputs {
                metric: self.to_string(),
            });
        }
        if self == Metric::MonteCarlo {
            crate::monte_carlo::check_samples(options.samples)?;
        }
        Ok(())
    }

    fn sequence_setup(
        self,
        first: &Transformer,
        networks: &[&Network],
        options: &MetricOptions<'_>,
    ) -> Result<(usize, Option<Arc<SequenceGeometry>>), MetricError> {
        let shape = first.shape();
        for (index, n) in networks.iter().enumerate() {
            let t = n.as_transformer().map_err(MetricError::Job)?;
            if t.shape() != shape {
                return Err(MetricError::Model {
                    index,
                    source: Error::DifferentArchitectures,
                });
            }
        }
        let positions = positions_for(first, options.positions);
        let geometry = if self.is_inner_product() {
            Some(Arc::new(SequenceGeometry::new(&shape, positions)?))
        } else {
            None
        };
        Ok((positions, geometry))
    }
}

impl Metric {
    /// The similarity of one pair, total and per output (class or token),
    /// for the inner-product metrics (`tensor`, `gaussian` and their
    /// slices; the total is reported whatever the slice): the cosines of
    /// [`crate::similarity()`] on the two prepared networks, each norm its
    /// own inner product. A matrix's entry for the pair reads the norms from
    /// its Gram diagonal instead and may differ in the last bits.
    pub fn pair(
        self,
        a: &Network,
        b: &Network,
        options: MetricOptions<'_>,
    ) -> Result<Similarity, MetricError> {
        let job = self.job(&[a, b], options)?;
        if !self.is_inner_product() {
            return Err(Error::NotInnerProduct {
                metric: self.to_string(),
            }
            .into());
        }
        match &job.sequence {
            Some((_, Some(geometry))) => {
                let prepared = prepare_each(&job.transformers(), &(), |m| {
                    SequencePrepared::new(m, geometry.clone())
                })?;
                Ok(similarity(&prepared[0], &prepared[1], faer::Par::Seq)?)
            }
            _ => match job.options.precision {
                Precision::F64 => job.sequential_pair::<f64>(),
                Precision::F32 => job.sequential_pair::<f32>(),
            },
        }
    }
}

impl MatrixJob<'_> {
    /// The metric this job computes.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The precision the job runs in (transformer metrics always run in f64).
    pub fn precision(&self) -> Precision {
        match self.sequence {
            None => self.options.precision,
            Some(_) => Precision::F64,
        }
    }

    /// Gaussian positions, for transformer jobs.
    pub fn positions(&self) -> Option<usize> {
        self.sequence.as_ref().map(|s| s.0)
    }

    /// Estimated peak memory in bytes, where the cost model knows it (the
    /// exact metrics through attention).
    pub fn peak_bytes(&self) -> Option<f64> {
        let geometry = self.sequence.as_ref()?.1.as_ref()?;
        Some(geometry.peak_bytes(self.networks.len()))
    }

    /// Computes the matrix; `progress` hears of every prepared model and pair.
    pub fn run(&self, progress: &dyn MatrixProgress) -> Result<MetricMatrix, MetricError> {
        let values = self.pair_values(progress, &PairPlan::all())?;
        Ok(MetricMatrix {
            values: assemble(self.metric, self.networks.len(), &values)?,
            description: self.description(),
        })
    }

    /// The values of the pairs of `plan` (see [`crate::pair_plan`]): raw
    /// inner products per output for the inner-product metrics, the metric's
    /// value otherwise. [`assemble`] makes the matrix of a complete set.
    pub fn pair_values(
        &self,
        progress: &dyn MatrixProgress,
        plan: &PairPlan<'_>,
    ) -> Result<PairValues, MetricError> {
        if self.metric.is_inner_product() {
            return Ok(self.inner_values(progress, plan)?.0);
        }
        match self.sequence {
            None => self.sequential_values(progress, plan),
            Some((positions, _)) => self.transformer_values(positions, progress, plan),
        }
    }

    /// What the matrix holds, for reports.
    pub fn description(&self) -> String {
        let Some((positions, _)) = self.sequence else {
            return self.metric.describe();
        };
        let samples = self.options.samples;
        match self.metric {
            Metric::MatrixCosine => "matrix cosine of all parameters".into(),
            Metric::MonteCarlo => {
                format!("Monte-Carlo gaussian ({samples} samples of {positions} positions)")
            }
            metric => {
                let exactness = self
                    .transformers()
                    .first()
                    .map_or(String::new(), |t| exactness_of(t).describe().to_string());
                match metric.slice() {
                    Some(c) => format!(
                        "gaussian slice of token {c} ({positions} Gaussian positions, {exactness})"
                    ),
                    None => {
                        format!("gaussian, uncentred ({positions} Gaussian positions, {exactness})")
                    }
                }
            }
        }
    }
}

/// Prepares every model in parallel, naming the one that fails.
fn prepare_each<'n, N: Sync + ?Sized, P: Send>(
    models: &[&'n N],
    progress: &dyn MatrixProgress,
    f: impl Fn(&'n N) -> Result<P, Error> + Sync,
) -> Result<Vec<P>, MetricError> {
    models
        .par_iter()
        .enumerate()
        .map(|(index, m)| {
            let p = f(m).map_err(|source| MetricError::Model { index, source })?;
            progress.model_prepared();
            Ok(p)
        })
        .collect()
}

/// `⟨a, b⟩ / (‖a‖ ‖b‖)` of two outputs flattened (Monte-Carlo samples).
fn flat_cosine(a: &Mat<f64>, b: &Mat<f64>) -> Result<Vec<f64>, Error> {
    if a.shape() != b.shape() {
        return Err(Error::Mismatch {
            what: "output dimension",
            a: a.ncols().to_string(),
            b: b.ncols().to_string(),
        });
    }
    let mut sums = CosineSums::default();
    for j in 0..a.ncols() {
        sums.add(a.col(j).iter().copied().zip(b.col(j).iter().copied()));
    }
    Ok(vec![sums.cosine(|| "a model's output".into())?])
}

impl MatrixJob<'_> {
    fn models(&self) -> Vec<&Model> {
        self.networks
            .iter()
            .map(|n| n.as_sequential().expect("checked by Metric::job"))
            .collect()
    }

    fn transformers(&self) -> Vec<&Transformer> {
        self.networks
            .iter()
            .map(|n| n.as_transformer().expect("checked by Metric::job"))
            .collect()
    }

    fn sequential_values(
        &self,
        progress: &dyn MatrixProgress,
        plan: &PairPlan<'_>,
    ) -> Result<PairValues, MetricError> {
        let models = self.models();
        let tick = || progress.pair_done();
        Ok(match self.metric {
            Metric::MatrixCosine => planned_values(
                &models,
                |a, b| Ok(vec![weight_cosine(a, b)?.all]),
                plan,
                &tick,
            )?,
            Metric::OutputCosine => {
                let x = self.options.inputs.expect("checked by Metric::job");
                let outputs = prepare_each(&models, progress, |m| m.forward(x))?;
                planned_values(
                    &outputs,
                    |a, b| Ok(vec![mean_row_cosine(a.as_ref(), b.as_ref())?]),
                    plan,
                    &tick,
                )?
            }
            Metric::Cka => {
                let x = self.options.inputs.expect("checked by Metric::job");
                let acts = prepare_each(&models, progress, |m| CkaPrepared::of_outputs(m, x))?;
                planned_values(
                    &acts,
                    |a, b| Ok(vec![a.cka(b, faer::Par::Seq)?]),
                    plan,
                    &tick,
                )?
            }
            Metric::MonteCarlo => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.options.seed);
                let x = gaussian_inputs(self.options.samples, models[0].input_dim(), &mut rng);
                let outputs = prepare_each(&models, progress, |m| m.forward(x.as_ref()))?;
                planned_values(&outputs, flat_cosine, plan, &tick)?
            }
            other => unreachable!("{other} is an inner product: inner_values computes it"),
        })
    }

    /// Raw inner products of the planned pairs and each model's log-scale
    /// (absolute = raw · exp(ls_i + ls_j)), for the inner-product metrics of
    /// either kind (MATH.md §2, §3).
    fn inner_values(
        &self,
        progress: &dyn MatrixProgress,
        plan: &PairPlan<'_>,
    ) -> Result<(PairValues, Vec<f64>), MetricError> {
        let tick = || progress.pair_done();
        match &self.sequence {
            None => match self.options.precision {
                Precision::F64 => self.sequential_inner::<f64>(progress, plan),
                Precision::F32 => self.sequential_inner::<f32>(progress, plan),
            },
            Some((_, Some(geometry))) => {
                let prepared = prepare_each(&self.transformers(), progress, |m| {
                    SequencePrepared::new(m, geometry.clone())
                })?;
                Ok(scaled_values(&prepared, plan, &tick)?)
            }
            Some((_, None)) => Err(Error::NotInnerProduct {
                metric: self.metric.to_string(),
            }
            .into()),
        }
    }

    /// [`Self::inner_values`] of sequential models.
    fn sequential_inner<T: Scalar>(
        &self,
        progress: &dyn MatrixProgress,
        plan: &PairPlan<'_>,
    ) -> Result<(PairValues, Vec<f64>), MetricError> {
        let tick = || progress.pair_done();
        let models = self.models();
        Ok(match self.metric {
            Metric::Tensor | Metric::TensorSlice(_) => {
                let prepared = prepare_each(&models, progress, TensorPrepared::<T>::new)?;
                scaled_values(&prepared, plan, &tick)?
            }
            metric => {
                let centring = match metric {
                    Metric::Gaussian(centring) => centring,
                    _ => Centring::Uncentred,
                };
                let prepared = prepare_each(&models, progress, |m| {
                    GaussianPrepared::<T>::with_centring(m, centring)
                })?;
                scaled_values(&prepared, plan, &tick)?
            }
        })
    }

    /// The raw inner products of every pair (MATH.md §2, §3): what the
    /// inner-product metrics (`tensor`, `gaussian` and their slices) read
    /// their cosines from, and what update similarity needs.
    pub fn gram(&self, progress: &dyn MatrixProgress) -> Result<GramMatrices, MetricError> {
        self.gram_planned(progress, &PairPlan::all())
    }

    /// [`Self::gram`] through `plan`, which must cover every pair: known
    /// pairs are taken as they are, new ones recorded (a resumable run).
    pub fn gram_planned(
        &self,
        progress: &dyn MatrixProgress,
        plan: &PairPlan<'_>,
    ) -> Result<GramMatrices, MetricError> {
        if !self.metric.is_inner_product() {
            return Err(Error::NotInnerProduct {
                metric: self.metric.to_string(),
            }
            .into());
        }
        let (values, log_scales) = self.inner_values(progress, plan)?;
        Ok(GramMatrices {
            raw: values.matrices(self.networks.len())?,
            log_scales,
        })
    }

    /// [`Metric::pair`] of two sequential models.
    fn sequential_pair<T: Scalar>(&self) -> Result<Similarity, MetricError> {
        let models = self.models();
        let par = faer::Par::rayon(0);
        Ok(match self.metric {
            Metric::Tensor | Metric::TensorSlice(_) => {
                let p = prepare_each(&models, &(), TensorPrepared::<T>::new)?;
                similarity(&p[0], &p[1], par)?
            }
            metric => {
                let centring = match metric {
                    Metric::Gaussian(centring) => centring,
                    _ => Centring::Uncentred,
                };
                let p = prepare_each(&models, &(), |m| {
                    GaussianPrepared::<T>::with_centring(m, centring)
                })?;
                similarity(&p[0], &p[1], par)?
            }
        })
    }

    fn transformer_values(
        &self,
        positions: usize,
        progress: &dyn MatrixProgress,
        plan: &PairPlan<'_>,
    ) -> Result<PairValues, MetricError> {
        let models = self.transformers();
        let tick = || progress.pair_done();
        let (samples, seed) = (self.options.samples, self.options.seed);
        Ok(match self.metric {
            Metric::MatrixCosine => planned_values(
                &models,
                |a, b| Ok(vec![parameter_cosine(&a.parameters(), &b.parameters())?]),
                plan,
                &tick,
            )?,
            Metric::MonteCarlo => planned_values(
                &models,
                |a, b| {
                    Ok(vec![
                        sequence_monte_carlo(a, b, positions, samples, seed)?.value,
                    ])
                },
                plan,
                &tick,
            )?,
            other => unreachable!("{other} is an inner product or does not apply to transformers"),
        })
    }
}
