//! Linear centred kernel alignment (MATH.md §4.3).
//!
//! For activations `X ∈ R^(n×p)`, `Y ∈ R^(n×q)` on the same `n` inputs, with
//! columns centred: `CKA = ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F)`.

use faer::{Mat, MatRef, Par};

use crate::error::{Error, Result};
use crate::gemm::product;
use crate::model::Model;

/// Activations with centred columns and their self term `‖XᵀX‖_F`, reusable
/// across every pair of a matrix.
#[derive(Clone, Debug)]
pub struct CkaPrepared {
    centred: Mat<f64>,
    self_norm: f64,
}

/// Whether every centred entry is within the rounding error of centring
/// (`4·n·ε` times the largest activation): the activations are then constant
/// over the inputs, and what is left after centring is rounding noise whose
/// CKA would be an arbitrary number (1.0000000000000002 between different
/// models on identical inputs).
fn constant_to_rounding(activations: MatRef<'_, f64>, centred: &Mat<f64>) -> bool {
    let largest = |m: MatRef<'_, f64>| {
        (0..m.ncols())
            .flat_map(|j| (0..m.nrows()).map(move |i| m[(i, j)].abs()))
            .fold(0.0f64, f64::max)
    };
    let n = activations.nrows() as f64;
    largest(centred.as_ref()) <= 4.0 * n * f64::EPSILON * largest(activations)
}

impl CkaPrepared {
    /// Centres the columns of an activation matrix (rows are inputs).
    pub fn new(activations: MatRef<'_, f64>) -> Result<Self> {
        let (n, p) = activations.shape();
        if n < 2 {
            return Err(Error::TooFewInputs {
                what: "CKA",
                needed: 2,
                given: n,
            });
        }
        let mut centred = activations.to_owned();
        for j in 0..p {
            let mean = (0..n).map(|i| centred[(i, j)]).sum::<f64>() / n as f64;
            for i in 0..n {
                centred[(i, j)] -= mean;
            }
        }
        let gram = product(centred.transpose(), centred.as_ref(), Par::Seq);
        let self_norm = gram.norm_l2();
        if self_norm.is_nan() || self_norm <= 0.0 || constant_to_rounding(activations, &centred) {
            return Err(Error::ZeroNorm {
                what: "the activations (constant over inputs)".into(),
            });
        }
        Ok(CkaPrepared { centred, self_norm })
    }

    /// Logits of a model on `inputs`, prepared.
    pub fn of_outputs(model: &Model, inputs: MatRef<'_, f64>) -> Result<Self> {
        Self::new(model.forward(inputs)?.as_ref())
    }

    /// Linear CKA with another prepared activation matrix over the same inputs.
    pub fn cka(&self, other: &Self, par: Par) -> Result<f64> {
        if self.centred.nrows() != other.centred.nrows() {
            return Err(Error::Mismatch {
                what: "number of inputs",
                a: self.centred.nrows().to_string(),
                b: other.centred.nrows().to_string(),
            });
        }
        let cross = product(other.centred.transpose(), self.centred.as_ref(), par);
        let num = cross.norm_l2();
        Ok((num / self.self_norm) * (num / other.self_norm))
    }
}

/// Linear CKA of two activation matrices over the same inputs (rows):
/// `‖Yᵀ X‖²_F / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F)` with centred columns (MATH.md §4.3).
/// It is 1 for activations that differ by a scale, a shift or an orthogonal
/// map of the features.
///
/// ```
/// use tensim_core::cka::{linear_cka, CkaPrepared};
/// use tensim_core::{Architecture, LayerShape, Mat, Par, Residual};
///
/// let x = Mat::from_fn(6, 3, |i, j| ((i * 3 + j) as f64).sin());
/// // Columns swapped (an orthogonal map), scaled by 2 and shifted by 1.
/// let y = Mat::from_fn(6, 3, |i, j| 2.0 * x[(i, 2 - j)] + 1.0);
/// assert!((linear_cka(x.as_ref(), y.as_ref()).unwrap() - 1.0).abs() < 1e-12);
///
/// // On models: the logits of each, prepared once.
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: true, right_bias: true, down_bias: true,
///         residual: Residual::None,
///     }],
/// };
/// let a = CkaPrepared::of_outputs(&arch.random_model(1).unwrap(), x.as_ref()).unwrap();
/// let b = CkaPrepared::of_outputs(&arch.random_model(2).unwrap(), x.as_ref()).unwrap();
/// let cka = a.cka(&b, Par::Seq).unwrap();
/// assert!((0.0..=1.0 + 1e-12).contains(&cka));
/// ```
pub fn linear_cka(x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Result<f64> {
    CkaPrepared::new(x)?.cka(&CkaPrepared::new(y)?, Par::Seq)
}
