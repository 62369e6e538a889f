//! Tensor similarity in weight space (MATH.md §2) via the four-GEMM core.
//!
//! For two bilinear forms `A = (D_a, L̂_a, R̂_a)` and `B = (D_b, L̂_b, R̂_b)`:
//!
//! ```text
//! G_LL = L̂_a L̂_bᵀ, G_RR = R̂_a R̂_bᵀ, G_LR = L̂_a R̂_bᵀ, G_RL = R̂_a L̂_bᵀ
//! core = ½ (G_LL ⊙ G_RR + G_LR ⊙ G_RL)                     (h_a × h_b)
//! ⟨A, B⟩_c = Σ_{h,k} D_a[c,h] D_b[c,k] core[h,k] = (D_a · core · D_bᵀ)[c,c]
//! ```
//!
//! The four Gram blocks come from one GEMM of the stacked factors `[L̂; R̂]`.
//! The `o×(d+1)×(d+1)` tensor is never materialised. This is the inner product
//! of the *symmetrised* padded tensors: for models with `f(0) = 0` (bias-free
//! ones among them) it is half the covariance of the outputs on Gaussian
//! input, so its cosine equals the centred Gaussian cosine (MATH.md §3.3).

use faer::{Mat, MatRef, Par};

use crate::error::{Error, Result};
use crate::folded::BilinearForm;
use crate::gemm::{cast_scaled, product, product_t, scale_of, stacked_gram_blocks};
use crate::model::Model;
use crate::scalar::Scalar;
use crate::similarity::InnerProductSpace;

/// A model prepared for tensor similarity, in scalar `T`: the stacked factors
/// `[L̂; R̂]` and `D`, each divided by its largest entry, plus the self
/// inner products. Build it once per model and reuse it for every pair.
///
/// The f32 path reads the same normalised factors and agrees with f64 to
/// rounding (MATH.md §2.7):
///
/// ```
/// use tensim_core::{similarity, tensor_similarity, Architecture, LayerShape, Par, Residual};
/// use tensim_core::TensorPrepared;
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: true, right_bias: true, down_bias: false,
///         residual: Residual::None,
///     }],
/// };
/// let (a, b) = (arch.random_model(1).unwrap(), arch.random_model(2).unwrap());
///
/// let pa = TensorPrepared::<f64>::new(&a).unwrap();
/// let pb = TensorPrepared::<f64>::new(&b).unwrap();
/// let exact = similarity(&pa, &pb, Par::Seq).unwrap();
/// assert_eq!(exact, tensor_similarity(&a, &b).unwrap());
///
/// let fa = TensorPrepared::<f32>::new(&a).unwrap();
/// let fb = TensorPrepared::<f32>::new(&b).unwrap();
/// let fast = similarity(&fa, &fb, Par::Seq).unwrap();
/// assert!((fast.total - exact.total).abs() < 1e-5);
/// ```
#[derive(Clone, Debug)]
pub struct TensorPrepared<T: Scalar> {
    stacked: Mat<T>,
    down: Mat<T>,
    hidden: usize,
    log_scale: f64,
    self_inner: Vec<f64>,
    fingerprint: u64,
}

impl<T: Scalar> TensorPrepared<T> {
    /// Folds the model into one bilinear form and prepares it; one slice per output.
    pub fn new(model: &Model) -> Result<Self> {
        Ok(Self::from_form(
            &BilinearForm::fold(model)?,
            model.fingerprint(),
        ))
    }

    /// Prepares slices along output directions: row `k` of `directions`
    /// (`k × o`) is a vector `u`, and output `k` of the result is the slice
    /// `⟨A, B⟩_u` with `D ↦ uᵀ D` (MATH.md §2).
    pub fn along(model: &Model, directions: MatRef<'_, f64>) -> Result<Self> {
        let mut form = BilinearForm::fold(model)?;
        if directions.ncols() != form.outputs() {
            return Err(Error::Mismatch {
                what: "output dimension of the slice directions",
                a: form.outputs().to_string(),
                b: directions.ncols().to_string(),
            });
        }
        form.down = product(directions, form.down.as_ref(), Par::Seq);
        let fingerprint = model.fingerprint() ^ crate::model::hash_values(directions);
        Ok(Self::from_form(&form, fingerprint))
    }

    /// Prepares an already folded form.
    pub fn from_form(form: &BilinearForm, fingerprint: u64) -> Self {
        let (sl, sr, sd) = (
            scale_of(form.left.as_ref()),
            scale_of(form.right.as_ref()),
            scale_of(form.down.as_ref()),
        );
        let hidden = form.hidden();
        let left = cast_scaled::<T>(form.left.as_ref(), 1.0 / sl);
        let right = cast_scaled::<T>(form.right.as_ref(), 1.0 / sr);
        let mut stacked = Mat::<T>::zeros(2 * hidden, form.padded_input());
        stacked.as_mut().subrows_mut(0, hidden).copy_from(&left);
        stacked
            .as_mut()
            .subrows_mut(hidden, hidden)
            .copy_from(&right);
        let mut prepared = TensorPrepared {
            stacked,
            down: cast_scaled(form.down.as_ref(), 1.0 / sd),
            hidden,
            log_scale: sl.ln() + sr.ln() + sd.ln(),
            self_inner: Vec::new(),
            fingerprint,
        };
        prepared.self_inner = prepared.raw(&prepared, Par::Seq);
        prepared
    }

    /// Hidden units of the folded form (including bias, residual and constant units).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Padded input width `d + 1`.
    pub fn padded_input(&self) -> usize {
        self.stacked.ncols()
    }

    /// Floating-point operations of one pair with `other`: the stacked Gram
    /// GEMM plus `D_a · core`.
    pub fn pair_flops(&self, other: &Self) -> f64 {
        let (ha, hb) = (self.hidden as f64, other.hidden as f64);
        let d = self.padded_input() as f64;
        let o = self.down.nrows() as f64;
        2.0 * (2.0 * ha) * (2.0 * hb) * d + 2.0 * o * ha * hb + 4.0 * ha * hb
    }

    fn raw(&self, other: &Self, par: Par) -> Vec<f64> {
        let (ha, hb) = (self.hidden, other.hidden);
        let gram = product_t(self.stacked.as_ref(), other.stacked.as_ref(), par);
        let half = T::of(0.5);
        let core = Mat::<T>::from_fn(ha, hb, |h, k| {
            let [ll, lr, rl, rr] = stacked_gram_blocks(gram.as_ref(), (ha, hb), (h, k));
            half * (ll * rr + lr * rl)
        });
        let weighted = product(self.down.as_ref(), core.as_ref(), par);
        (0..self.down.nrows())
            .map(|c| {
                (0..hb)
                    .map(|k| weighted[(c, k)].to_f64() * other.down[(c, k)].to_f64())
                    .sum()
            })
            .collect()
    }
}

impl<T: Scalar> InnerProductSpace for TensorPrepared<T> {
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    fn outputs(&self) -> usize {
        self.down.nrows()
    }
    fn log_scale(&self) -> f64 {
        self.log_scale
    }
    fn self_inner(&self) -> &[f64] {
        &self.self_inner
    }
    fn raw_inner(&self, other: &Self, par: Par) -> Result<Vec<f64>> {
        if self.padded_input() != other.padded_input() {
            return Err(Error::Mismatch {
                what: "input dimension",
                a: (self.padded_input() - 1).to_string(),
                b: (other.padded_input() - 1).to_string(),
            });
        }
        Ok(self.raw(other, par))
    }
}

/// Tensor similarity of two models in f64 (convenience for one pair):
/// `Σ_c ⟨A,B⟩_c / sqrt(Σ_c ⟨A,A⟩_c · Σ_c ⟨B,B⟩_c)` over the symmetrised
/// padded tensors (MATH.md §2.3), and the cosine of each output slice (§2.5).
/// A model with two or more bilinear layers is refused
/// ([`Error::NotOneBilinearForm`]).
///
/// ```
/// use tensim_core::{tensor_similarity, Architecture, LayerShape, Residual};
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
/// let same = tensor_similarity(&a, &a).unwrap();
/// assert!((same.total - 1.0).abs() < 1e-12);
/// let other = tensor_similarity(&a, &b).unwrap();
/// assert_eq!(other.per_output.len(), 2);
/// assert!(other.total.abs() < 1.0);
/// ```
pub fn tensor_similarity(a: &Model, b: &Model) -> Result<crate::similarity::Similarity> {
    let (pa, pb) = (
        TensorPrepared::<f64>::new(a)?,
        TensorPrepared::<f64>::new(b)?,
    );
    crate::similarity::similarity(&pa, &pb, Par::Seq)
}
