//! Exact Gaussian functional similarity by second-moment propagation (MATH.md §3).
//!
//! For input `x ~ N(0, I)` the padded moments `S_aa = E[x̂_a x̂_aᵀ]`,
//! `S_ab = E[x̂_a x̂_bᵀ]`, `S_bb` start at `I` and are carried layer by layer:
//!
//! * affine: `S'_ab = Ŵ_a S_ab Ŵ_bᵀ` (exact for any distribution);
//! * bilinear, with `u = L̂_a x̂_a, v = R̂_a x̂_a, u' = L̂_b x̂_b, v' = R̂_b x̂_b`:
//!
//! ```text
//! M[h,k] = (L̂_a S_aa R̂_aᵀ)[h,h]·(L̂_b S_bb R̂_bᵀ)[k,k]
//!        + (L̂_a S_ab L̂_bᵀ)[h,k]·(R̂_a S_ab R̂_bᵀ)[h,k]
//!        + (L̂_a S_ab R̂_bᵀ)[h,k]·(R̂_a S_ab L̂_bᵀ)[h,k]
//!        − 2·μ_u[h] μ_v[h] μ_u'[k] μ_v'[k]
//! S'_ab = D̂_a M D̂_bᵀ
//! ```
//!
//! The three products are Isserlis' pairings of raw moments; `−2∏μ` removes the
//! all-means configuration they count three times. Exact through one bilinear
//! layer; deeper stacks treat each layer's input as Gaussian with the right
//! second moment (Gaussian closure), and every result says which case it is.
//!
//! **Normalisation.** Every layer's weights are divided by their largest entry
//! and every self moment by its largest entry; the cross moment follows with
//! `1/(√α·√β)`. All quantities are homogeneous in the padded vector `x̂`
//! (constant included), so a stored moment is the true one times `c_a c_b`, with
//! `ln c` tracked in f64. Means are read as `μ = S[:, 0] / c`. Hence f32 never
//! overflows, however large the weights.

use faer::{Mat, MatRef, Par};

use crate::error::{Error, Result};
use crate::gemm::{cast_scaled, congruence, product, product_t, scale_of, stacked_gram_blocks};
use crate::model::{Layer, Linear, Model};
use crate::padded::{pad_layer, PaddedLayer};
use crate::scalar::Scalar;
use crate::similarity::InnerProductSpace;

/// Whether a Gaussian similarity is exact or relies on Gaussian closure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exactness {
    /// At most one polynomial (bilinear) layer: the moments are exact.
    Exact,
    /// Several bilinear layers: each one's input is treated as Gaussian.
    /// The output moments are those of the Gaussian closure (MATH.md §3.5,
    /// §3.7.9 for transformers), an approximation.
    GaussianClosure {
        /// Polynomial layers of the deeper model (two or more): bilinear
        /// layers of a sequential model, attentions plus MLPs of a transformer.
        polynomial_layers: usize,
    },
}

impl Exactness {
    fn of(model: &Model) -> Self {
        match model.architecture().bilinear_layers() {
            0 | 1 => Exactness::Exact,
            n => Exactness::GaussianClosure {
                polynomial_layers: n,
            },
        }
    }

    /// The less exact of two models' exactness (a pair is exact iff both are).
    pub fn combine(self, other: Self) -> Self {
        match (self, other) {
            (Exactness::Exact, x) | (x, Exactness::Exact) => x,
            (
                Exactness::GaussianClosure {
                    polynomial_layers: a,
                },
                Exactness::GaussianClosure {
                    polynomial_layers: b,
                },
            ) => Exactness::GaussianClosure {
                polynomial_layers: a.max(b),
            },
        }
    }

    /// Whether the moments are exact (no Gaussian closure was applied).
    pub fn is_exact(self) -> bool {
        self == Exactness::Exact
    }

    /// A phrase for reports: "exact" or "Gaussian closure through N layers".
    pub fn describe(self) -> String {
        match self {
            Exactness::Exact => "exact".to_string(),
            Exactness::GaussianClosure { polynomial_layers } => {
                format!("Gaussian closure through {polynomial_layers} bilinear layers")
            }
        }
    }
}

/// Which output moment the similarity reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Centring {
    /// `E[f_a f_b]`: the `gaussian` metric.
    Uncentred,
    /// `E[(f_a − E f_a)(f_b − E f_b)]`: equals `tensor` for one bias-free layer.
    Centred,
}

#[derive(Clone, Debug)]
enum Step<T> {
    Affine(Mat<T>),
    Bilinear {
        /// `[L̂; R̂]`, `2h × (d+1)`.
        stacked: Mat<T>,
        down: Mat<T>,
        hidden: usize,
        /// `(L̂ S_aa R̂ᵀ)[h,h]` from the model's own input moment.
        diag: Vec<T>,
        /// `μ_u[h] μ_v[h]` from the model's own input mean.
        mean_product: Vec<T>,
    },
}

#[derive(Clone, Debug)]
struct PreparedLayer<T> {
    step: Step<T>,
    /// Largest entry of the self moment after this layer (divided out).
    output_norm: f64,
}

/// A model prepared for Gaussian functional similarity: normalised padded
/// layers, its own moment chain, and the final self inner products.
///
/// For one bias-free bilinear layer the centred Gaussian cosine equals the
/// tensor similarity (MATH.md §3.3):
///
/// ```
/// use tensim_core::{similarity, Architecture, LayerShape, Par, Residual};
/// use tensim_core::{Centring, GaussianPrepared, TensorPrepared};
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: false, right_bias: false, down_bias: false,
///         residual: Residual::None,
///     }],
/// };
/// let (a, b) = (arch.random_model(1).unwrap(), arch.random_model(2).unwrap());
///
/// let centred = |m| GaussianPrepared::<f64>::with_centring(m, Centring::Centred).unwrap();
/// let gaussian = similarity(&centred(&a), &centred(&b), Par::Seq).unwrap();
/// let tensor = similarity(
///     &TensorPrepared::<f64>::new(&a).unwrap(),
///     &TensorPrepared::<f64>::new(&b).unwrap(),
///     Par::Seq,
/// )
/// .unwrap();
/// assert!((gaussian.total - tensor.total).abs() < 1e-10);
/// ```
#[derive(Clone, Debug)]
pub struct GaussianPrepared<T: Scalar> {
    layers: Vec<PreparedLayer<T>>,
    input_dim: usize,
    outputs: usize,
    log_c: f64,
    final_mean: Vec<f64>,
    self_inner: Vec<f64>,
    exactness: Exactness,
    centring: Centring,
    fingerprint: u64,
}

/// `(A S Bᵀ)[h,h]` for every row `h` of `A` and `B`.
fn congruence_diagonal<T: Scalar>(
    a: MatRef<'_, T>,
    s: Option<MatRef<'_, T>>,
    b: MatRef<'_, T>,
) -> Vec<T> {
    let as_ = s.map(|s| product(a, s, Par::Seq));
    let left = as_.as_ref().map_or(a, |m| m.as_ref());
    (0..a.nrows())
        .map(|h| {
            let mut acc = T::of(0.0);
            for j in 0..b.ncols() {
                acc += left[(h, j)] * b[(h, j)];
            }
            acc
        })
        .collect()
}

fn mat_vec<T: Scalar>(m: MatRef<'_, T>, v: &[T]) -> Vec<T> {
    (0..m.nrows())
        .map(|i| {
            let mut acc = T::of(0.0);
            for (j, &x) in v.iter().enumerate() {
                acc += m[(i, j)] * x;
            }
            acc
        })
        .collect()
}

/// Mean of the stored padded vector: `μ = S[:, 0] / c` (identity moment: `e_0`).
fn stored_mean<T: Scalar>(s: Option<MatRef<'_, T>>, log_c: f64, dim: usize) -> Vec<T> {
    match s {
        None => (0..dim)
            .map(|i| T::of(if i == 0 { 1.0 } else { 0.0 }))
            .collect(),
        Some(s) => {
            let inv_c = (-log_c).exp();
            (0..dim)
                .map(|i| T::of(s[(i, 0)].to_f64() * inv_c))
                .collect()
        }
    }
}

/// One layer's cross moment `S'_ab` from `S_ab` (None: the identity input moment).
fn propagate<T: Scalar>(a: &Step<T>, b: &Step<T>, s_ab: Option<MatRef<'_, T>>, par: Par) -> Mat<T> {
    match (a, b) {
        (Step::Affine(wa), Step::Affine(wb)) => congruence(wa.as_ref(), s_ab, wb.as_ref(), par),
        (
            Step::Bilinear {
                stacked: sa,
                down: da,
                hidden: ha,
                diag: diag_a,
                mean_product: mp_a,
            },
            Step::Bilinear {
                stacked: sb,
                down: db,
                hidden: hb,
                diag: diag_b,
                mean_product: mp_b,
            },
        ) => {
            let (ha, hb) = (*ha, *hb);
            let gram = congruence(sa.as_ref(), s_ab, sb.as_ref(), par);
            let two = T::of(2.0);
            let m = Mat::<T>::from_fn(ha, hb, |h, k| {
                let [ll, lr, rl, rr] = stacked_gram_blocks(gram.as_ref(), (ha, hb), (h, k));
                diag_a[h] * diag_b[k] + ll * rr + lr * rl - two * mp_a[h] * mp_b[k]
            });
            product_t(
                product(da.as_ref(), m.as_ref(), par).as_ref(),
                db.as_ref(),
                par,
            )
        }
        _ => unreachable!("architectures are checked to match before propagating"),
    }
}

impl<T: Scalar> GaussianPrepared<T> {
    /// Prepares a model for the `gaussian` metric (uncentred outputs).
    pub fn new(model: &Model) -> Result<Self> {
        Self::with_centring(model, Centring::Uncentred)
    }

    /// Prepares a model, choosing centred or uncentred outputs.
    pub fn with_centring(model: &Model, centring: Centring) -> Result<Self> {
        Self::build(model, centring, model.fingerprint())
    }

    /// Slices along output directions (rows of `directions`, `k × o`): an exact
    /// linear step appended to the model, so output `k` is `uₖᵀ f(x)`.
    pub fn along(model: &Model, directions: MatRef<'_, f64>, centring: Centring) -> Result<Self> {
        if directions.ncols() != model.output_dim() {
            return Err(Error::Mismatch {
                what: "output dimension of the slice directions",
                a: model.output_dim().to_string(),
                b: directions.ncols().to_string(),
            });
        }
        let mut layers = model.layers().to_vec();
        layers.push(Layer::Linear(Linear {
            weight: directions.to_owned(),
            bias: None,
        }));
        let extended = Model::new(layers)?;
        let fingerprint = model.fingerprint() ^ crate::model::hash_values(directions);
        Self::build(&extended, centring, fingerprint)
    }

    fn build(model: &Model, centring: Centring, fingerprint: u64) -> Result<Self> {
        let input_dim = model.input_dim();
        let mut layers: Vec<PreparedLayer<T>> = Vec::with_capacity(model.layers().len());
        let mut s_self: Option<Mat<T>> = None;
        let mut log_c = 0.0f64;
        let mut dim = input_dim + 1;
        for layer in model.layers() {
            let s_in = s_self.as_ref().map(|m| m.as_ref());
            let (step, weight_log, degree) = match pad_layer(layer) {
                PaddedLayer::Affine(w) => {
                    let sw = scale_of(w.as_ref());
                    (
                        Step::Affine(cast_scaled(w.as_ref(), 1.0 / sw)),
                        sw.ln(),
                        1.0,
                    )
                }
                PaddedLayer::Bilinear { left, right, down } => {
                    let (sl, sr, sd) = (
                        scale_of(left.as_ref()),
                        scale_of(right.as_ref()),
                        scale_of(down.as_ref()),
                    );
                    let hidden = left.nrows();
                    let l = cast_scaled::<T>(left.as_ref(), 1.0 / sl);
                    let r = cast_scaled::<T>(right.as_ref(), 1.0 / sr);
                    let mut stacked = Mat::<T>::zeros(2 * hidden, dim);
                    stacked.as_mut().subrows_mut(0, hidden).copy_from(&l);
                    stacked.as_mut().subrows_mut(hidden, hidden).copy_from(&r);
                    let diag = congruence_diagonal(l.as_ref(), s_in, r.as_ref());
                    let mean = stored_mean(s_in, log_c, dim);
                    let (mu, mv) = (mat_vec(l.as_ref(), &mean), mat_vec(r.as_ref(), &mean));
                    let mean_product = mu.iter().zip(&mv).map(|(&u, &v)| u * v).collect();
                    let step = Step::Bilinear {
                        stacked,
                        down: cast_scaled(down.as_ref(), 1.0 / sd),
                        hidden,
                        diag,
                        mean_product,
                    };
                    (step, sl.ln() + sr.ln() + sd.ln(), 2.0)
                }
            };
            let mut s_out = propagate(&step, &step, s_in, Par::Seq);
            let alpha = scale_of(s_out.as_ref());
            // The same factor a pair (a, a) applies, so self-similarity is 1 to rounding.
            let inv = T::of(1.0 / (alpha.sqrt() * alpha.sqrt()));
            for j in 0..s_out.ncols() {
                for i in 0..s_out.nrows() {
                    s_out[(i, j)] *= inv;
                }
            }
            // Stored x̂ = c·x̂_true: dividing the weights by their scale and the
            // moment by α gives c' = c^degree / (weight scale · √α).
            log_c = degree * log_c - weight_log - 0.5 * alpha.ln();
            dim = s_out.nrows();
            layers.push(PreparedLayer {
                step,
                output_norm: alpha,
            });
            s_self = Some(s_out);
        }
        let s_final = s_self.ok_or(Error::Empty)?;
        let outputs = dim - 1;
        let final_mean: Vec<f64> = stored_mean(Some(s_final.as_ref()), log_c, dim)
            .into_iter()
            .map(Scalar::to_f64)
            .collect();
        let mut prepared = GaussianPrepared {
            layers,
            input_dim,
            outputs,
            log_c,
            final_mean,
            self_inner: Vec::new(),
            exactness: Exactness::of(model),
            centring,
            fingerprint,
        };
        prepared.self_inner = prepared.read_outputs(&prepared, s_final.as_ref());
        Ok(prepared)
    }

    /// Whether this model's moments are exact.
    pub fn exactness(&self) -> Exactness {
        self.exactness
    }

    /// Floating-point operations of one pair with `other` (GEMMs only).
    pub fn pair_flops(&self, other: &Self) -> f64 {
        let mut flops = 0.0;
        let mut dims = (self.input_dim as f64 + 1.0, other.input_dim as f64 + 1.0);
        for (i, (la, lb)) in self.layers.iter().zip(&other.layers).enumerate() {
            let with_s = i > 0;
            match (&la.step, &lb.step) {
                (Step::Affine(wa), Step::Affine(wb)) => {
                    let (oa, ob) = (wa.nrows() as f64, wb.nrows() as f64);
                    if with_s {
                        flops += 2.0 * oa * dims.0 * dims.1;
                    }
                    flops += 2.0 * oa * dims.1 * ob;
                    dims = (oa, ob);
                }
                (
                    Step::Bilinear {
                        stacked: sa,
                        down: da,
                        ..
                    },
                    Step::Bilinear {
                        stacked: sb,
                        down: db,
                        ..
                    },
                ) => {
                    let (ha2, hb2) = (sa.nrows() as f64, sb.nrows() as f64);
                    let (oa, ob) = (da.nrows() as f64, db.nrows() as f64);
                    if with_s {
                        flops += 2.0 * ha2 * dims.0 * dims.1;
                    }
                    flops += 2.0 * ha2 * dims.1 * hb2;
                    flops += 2.0 * oa * (ha2 / 2.0) * (hb2 / 2.0) + 2.0 * oa * (hb2 / 2.0) * ob;
                    dims = (oa, ob);
                }
                _ => {}
            }
        }
        flops
    }

    fn check_compatible(&self, other: &Self) -> Result<()> {
        let kinds = |p: &Self| -> String {
            p.layers
                .iter()
                .map(|l| match l.step {
                    Step::Affine(_) => 'L',
                    Step::Bilinear { .. } => 'B',
                })
                .collect()
        };
        if self.input_dim != other.input_dim {
            return Err(Error::Mismatch {
                what: "input dimension",
                a: self.input_dim.to_string(),
                b: other.input_dim.to_string(),
            });
        }
        let (ka, kb) = (kinds(self), kinds(other));
        if ka != kb {
            return Err(Error::Mismatch {
                what: "layer kinds (L = linear, B = bilinear); moment propagation pairs layers one to one",
                a: ka,
                b: kb,
            });
        }
        Ok(())
    }

    /// The final padded cross moment `S_ab` (stored units).
    fn cross_moment(&self, other: &Self, par: Par) -> Mat<T> {
        let mut s: Option<Mat<T>> = None;
        for (la, lb) in self.layers.iter().zip(&other.layers) {
            let mut next = propagate(&la.step, &lb.step, s.as_ref().map(|m| m.as_ref()), par);
            let scale = T::of(1.0 / (la.output_norm.sqrt() * lb.output_norm.sqrt()));
            for j in 0..next.ncols() {
                for i in 0..next.nrows() {
                    next[(i, j)] *= scale;
                }
            }
            s = Some(next);
        }
        s.expect("a prepared model has at least one layer")
    }

    fn read_outputs(&self, other: &Self, s_ab: MatRef<'_, T>) -> Vec<f64> {
        (0..self.outputs)
            .map(|c| {
                let raw = s_ab[(c + 1, c + 1)].to_f64();
                match self.centring {
                    Centring::Uncentred => raw,
                    Centring::Centred => raw - self.final_mean[c + 1] * other.final_mean[c + 1],
                }
            })
            .collect()
    }
}

impl<T: Scalar> InnerProductSpace for GaussianPrepared<T> {
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    fn outputs(&self) -> usize {
        self.outputs
    }
    /// Stored moments are the true ones times `c_a c_b`: the log-scale is `−ln c`.
    fn log_scale(&self) -> f64 {
        -self.log_c
    }
    fn self_inner(&self) -> &[f64] {
        &self.self_inner
    }
    fn raw_inner(&self, other: &Self, par: Par) -> Result<Vec<f64>> {
        self.check_compatible(other)?;
        if self.centring != other.centring {
            return Err(Error::MixedCentring);
        }
        let s_ab = self.cross_moment(other, par);
        Ok(self.read_outputs(other, s_ab.as_ref()))
    }
}

/// Gaussian functional similarity of two models in f64, with its exactness:
/// the uncentred cosine `Σ_c E[f_a,c f_b,c] / sqrt(Σ_c E[f_a,c²] · Σ_c E[f_b,c²])`
/// on `x ~ N(0, I)`, by second-moment propagation (MATH.md §3.4), exact
/// through one bilinear layer and a Gaussian closure beyond (§3.5).
///
/// ```
/// use tensim_core::{gaussian_similarity, Architecture, Exactness, LayerShape, Residual};
///
/// let block = LayerShape::Bilinear {
///     input: 3, hidden: 4, output: 3,
///     left_bias: true, right_bias: true, down_bias: true,
///     residual: Residual::Lerp(0.5),
/// };
/// let one = Architecture { layers: vec![block.clone()] };
/// let (a, b) = (one.random_model(1).unwrap(), one.random_model(2).unwrap());
/// let (same, exactness) = gaussian_similarity(&a, &a).unwrap();
/// assert!((same.total - 1.0).abs() < 1e-12);
/// assert_eq!(exactness, Exactness::Exact);
/// let (other, _) = gaussian_similarity(&a, &b).unwrap();
/// assert!(other.total.abs() < 1.0);
///
/// let two = Architecture { layers: vec![block.clone(), block] };
/// let deep = two.random_model(3).unwrap();
/// let (_, exactness) = gaussian_similarity(&deep, &deep).unwrap();
/// assert_eq!(exactness, Exactness::GaussianClosure { polynomial_layers: 2 });
/// ```
pub fn gaussian_similarity(
    a: &Model,
    b: &Model,
) -> Result<(crate::similarity::Similarity, Exactness)> {
    let (pa, pb) = (
        GaussianPrepared::<f64>::new(a)?,
        GaussianPrepared::<f64>::new(b)?,
    );
    let sim = crate::similarity::similarity(&pa, &pb, Par::Seq)?;
    Ok((sim, pa.exactness().combine(pb.exactness())))
}
