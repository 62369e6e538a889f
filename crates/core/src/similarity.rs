//! What every inner-product metric shares: cosines from per-output inner
//! products, slices, and the similarity of updates (MATH.md §2).
//!
//! A metric prepares each model once ([`InnerProductSpace`]), then any pair
//! costs one [`InnerProductSpace::raw_inner`]. Prepared models store their
//! numbers normalised, with the removed factor kept as a log-scale, so the
//! cosine never overflows and absolute inner products are still available for
//! update (difference) similarity.

use faer::Par;

use crate::error::{Error, Result};

/// A model prepared for one inner-product metric.
///
/// `raw_inner(a, b)[c] · exp(a.log_scale() + b.log_scale())` is the inner
/// product of output `c` of the two models; it is symmetric in `a`, `b`.
pub trait InnerProductSpace: Send + Sync {
    /// Hash of the model's weights: pairs are evaluated in ascending order of it.
    fn fingerprint(&self) -> u64;
    /// Number of outputs (classes or directions).
    fn outputs(&self) -> usize;
    /// Log of the factor that turns raw inner products into absolute ones.
    fn log_scale(&self) -> f64;
    /// Raw self inner products per output, computed once.
    fn self_inner(&self) -> &[f64];
    /// Raw inner products per output with another model of the same metric.
    fn raw_inner(&self, other: &Self, par: Par) -> Result<Vec<f64>>;
}

/// Raw inner products with the two arguments in canonical order, so that
/// `sim(a, b)` and `sim(b, a)` perform identical floating-point operations.
pub fn canonical_raw_inner<P: InnerProductSpace>(a: &P, b: &P, par: Par) -> Result<Vec<f64>> {
    if a.outputs() != b.outputs() {
        return Err(Error::Mismatch {
            what: "output dimension",
            a: a.outputs().to_string(),
            b: b.outputs().to_string(),
        });
    }
    if b.fingerprint() < a.fingerprint() {
        b.raw_inner(a, par)
    } else {
        a.raw_inner(b, par)
    }
}

/// A similarity between two models: the total cosine and one per output.
#[derive(Clone, Debug, PartialEq)]
pub struct Similarity {
    /// `Σ_c ⟨A,B⟩_c / sqrt(Σ_c ⟨A,A⟩_c · Σ_c ⟨B,B⟩_c)`.
    pub total: f64,
    /// `⟨A,B⟩_c / sqrt(⟨A,A⟩_c ⟨B,B⟩_c)` for every output `c` (MATH.md §2.5, slices).
    pub per_output: Vec<f64>,
}

/// `x / (sqrt(y) · sqrt(z))`: never forms `y·z`, which could overflow (MATH.md §3.6).
/// A zero squared norm (undefined cosine) and an infinite one (values beyond
/// f64's range) are errors that say so, never a number.
pub fn cosine_of(xy: f64, xx: f64, yy: f64, what: impl Fn() -> String) -> Result<f64> {
    if let Some(&value) = [xx, yy].iter().find(|v| v.is_infinite()) {
        return Err(Error::NotFinite {
            what: format!(
                "the squared norm of {} (its values exceed f64's range)",
                what()
            ),
            value,
        });
    }
    if xx.is_nan() || yy.is_nan() || xx <= 0.0 || yy <= 0.0 {
        return Err(Error::ZeroNorm { what: what() });
    }
    let value = xy / (xx.sqrt() * yy.sqrt());
    if !value.is_finite() {
        return Err(Error::NotFinite {
            what: what(),
            value,
        });
    }
    Ok(value)
}

/// Running sums `⟨a,b⟩`, `‖a‖²`, `‖b‖²` of a cosine of flattened values,
/// closed by [`cosine_of`]'s one zero-norm rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct CosineSums {
    ab: f64,
    aa: f64,
    bb: f64,
}

impl CosineSums {
    /// Adds value pairs `(a_k, b_k)` in order.
    pub fn add(&mut self, pairs: impl IntoIterator<Item = (f64, f64)>) {
        for (x, y) in pairs {
            self.ab += x * y;
            self.aa += x * x;
            self.bb += y * y;
        }
    }

    /// Adds two slices entry by entry.
    pub fn add_slices(&mut self, a: &[f64], b: &[f64]) {
        self.add(a.iter().copied().zip(b.iter().copied()));
    }

    /// `⟨a,b⟩ / (‖a‖ ‖b‖)`; `what` names the values if a norm is zero.
    pub fn cosine(self, what: impl Fn() -> String) -> Result<f64> {
        cosine_of(self.ab, self.aa, self.bb, what)
    }
}

fn cosines(ab: &[f64], aa: &[f64], bb: &[f64]) -> Result<Similarity> {
    let total = cosine_of(ab.iter().sum(), aa.iter().sum(), bb.iter().sum(), || {
        "the model".to_string()
    })?;
    let per_output = (0..ab.len())
        .map(|c| cosine_of(ab[c], aa[c], bb[c], || format!("output {c}")))
        .collect::<Result<_>>()?;
    Ok(Similarity { total, per_output })
}

/// Cosine similarity of two prepared models, total and per output:
/// `Σ_c ⟨A,B⟩_c / sqrt(Σ_c ⟨A,A⟩_c · Σ_c ⟨B,B⟩_c)` and
/// `⟨A,B⟩_c / sqrt(⟨A,A⟩_c ⟨B,B⟩_c)` (MATH.md §2.3, §2.5), for any metric's
/// prepared models. Pairs are evaluated in a canonical order, so the result
/// is bit-exactly symmetric (MATH.md §5.2).
///
/// ```
/// use tensim_core::{similarity, Architecture, GaussianPrepared, LayerShape, Par, Residual};
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: true, right_bias: true, down_bias: true,
///         residual: Residual::None,
///     }],
/// };
/// let prepare = |seed| GaussianPrepared::<f64>::new(&arch.random_model(seed).unwrap()).unwrap();
/// let (a, b) = (prepare(1), prepare(2));
///
/// let ab = similarity(&a, &b, Par::Seq).unwrap();
/// let ba = similarity(&b, &a, Par::Seq).unwrap();
/// assert_eq!(ab, ba);
/// assert_eq!(ab.per_output.len(), 2);
/// assert!(ab.per_output.iter().all(|c| c.abs() <= 1.0));
/// ```
pub fn similarity<P: InnerProductSpace>(a: &P, b: &P, par: Par) -> Result<Similarity> {
    let ab = canonical_raw_inner(a, b, par)?;
    cosines(&ab, a.self_inner(), b.self_inner())
}

/// Absolute inner products per output, `⟨A, B⟩_c`.
pub fn inner_products<P: InnerProductSpace>(a: &P, b: &P, par: Par) -> Result<Vec<f64>> {
    let scale = (a.log_scale() + b.log_scale()).exp();
    Ok(canonical_raw_inner(a, b, par)?
        .into_iter()
        .map(|v| v * scale)
        .collect())
}

/// Similarity of two updates `A₁ − A₀` and `B₁ − B₀` from the four pairwise
/// inner products (MATH.md §2.6, difference similarity), never forming a
/// difference tensor:
///
/// `⟨A₁−A₀, B₁−B₀⟩ = ⟨A₁,B₁⟩ − ⟨A₁,B₀⟩ − ⟨A₀,B₁⟩ + ⟨A₀,B₀⟩`,
/// `‖A₁−A₀‖² = ⟨A₁,A₁⟩ − 2⟨A₁,A₀⟩ + ⟨A₀,A₀⟩`.
///
/// Computed in f64 relative to the scale of `A₀` and `B₀`. The subtraction
/// cancels: an update `ε` times smaller than the weights loses about
/// `log10(1/ε²)` of the 16 significant digits.
///
/// An update compared with itself gives 1, and with its reverse −1:
///
/// ```
/// use tensim_core::{difference_similarity, Architecture, LayerShape, Par, Residual};
/// use tensim_core::TensorPrepared;
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: false, right_bias: false, down_bias: false,
///         residual: Residual::None,
///     }],
/// };
/// let prepare = |seed| TensorPrepared::<f64>::new(&arch.random_model(seed).unwrap()).unwrap();
/// let (before, after) = (prepare(1), prepare(2));
///
/// let same = difference_similarity(&before, &after, &before, &after, Par::Seq).unwrap();
/// assert!((same.total - 1.0).abs() < 1e-10);
/// let reverse = difference_similarity(&before, &after, &after, &before, Par::Seq).unwrap();
/// assert!((reverse.total + 1.0).abs() < 1e-10);
/// ```
pub fn difference_similarity<P: InnerProductSpace>(
    a0: &P,
    a1: &P,
    b0: &P,
    b1: &P,
    par: Par,
) -> Result<Similarity> {
    let (la0, la1, lb0, lb1) = (
        a0.log_scale(),
        a1.log_scale(),
        b0.log_scale(),
        b1.log_scale(),
    );
    // Every product is expressed in units of exp(la0 + lb0) (cross),
    // exp(2 la0) (a-norm) or exp(2 lb0) (b-norm).
    let scaled = |x: &P, y: &P, rel: f64| -> Result<Vec<f64>> {
        let f = (x.log_scale() + y.log_scale() - rel).exp();
        Ok(canonical_raw_inner(x, y, par)?
            .into_iter()
            .map(|v| v * f)
            .collect())
    };
    let own = |x: &P, rel: f64| -> Vec<f64> {
        let f = (2.0 * x.log_scale() - rel).exp();
        x.self_inner().iter().map(|v| v * f).collect()
    };
    let cross = la0 + lb0;
    let (p11, p10, p01, p00) = (
        scaled(a1, b1, cross)?,
        scaled(a1, b0, cross)?,
        scaled(a0, b1, cross)?,
        scaled(a0, b0, cross)?,
    );
    let (a11, a10, a00) = (
        own(a1, 2.0 * la0),
        scaled(a1, a0, 2.0 * la0)?,
        own(a0, 2.0 * la0),
    );
    let (b11, b10, b00) = (
        own(b1, 2.0 * lb0),
        scaled(b1, b0, 2.0 * lb0)?,
        own(b0, 2.0 * lb0),
    );
    let _ = (la1, lb1);
    let n = p11.len();
    let ab: Vec<f64> = (0..n).map(|c| p11[c] - p10[c] - p01[c] + p00[c]).collect();
    let aa: Vec<f64> = (0..n).map(|c| a11[c] - 2.0 * a10[c] + a00[c]).collect();
    let bb: Vec<f64> = (0..n).map(|c| b11[c] - 2.0 * b10[c] + b00[c]).collect();
    cosines(&ab, &aa, &bb).map_err(|e| match e {
        Error::ZeroNorm { what } => Error::ZeroNorm {
            what: format!("the update of {what} (the two checkpoints are identical there)"),
        },
        other => other,
    })
}
