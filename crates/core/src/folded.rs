//! A model with at most one bilinear layer, contracted into one bilinear form
//! (MATH.md §2): `y_o = Σ_h D[o,h] (L̂ x̂)_h (R̂ x̂)_h` on the padded input.
//!
//! A linear embedding `E` before the bilinear layer folds into `L̂ Ê`, `R̂ Ê`;
//! a linear head `P` after it folds into `P̂ D̂`. Biases and residual
//! connections become extra hidden units (see the private `padded` module).

use faer::Mat;

use crate::error::{Error, Result};
use crate::gemm::product;
use crate::model::Model;
use crate::padded::{pad_layer, PaddedLayer};

/// One bilinear form over the padded input `x̂ = [1; x]`.
#[derive(Clone, Debug)]
pub struct BilinearForm {
    /// `L̂ ∈ R^(h×(d+1))`.
    pub left: Mat<f64>,
    /// `R̂ ∈ R^(h×(d+1))`.
    pub right: Mat<f64>,
    /// `D ∈ R^(o×h)`, the non-constant outputs only.
    pub down: Mat<f64>,
}

impl BilinearForm {
    /// Contracts a model with zero or one bilinear layers into one form.
    ///
    /// A purely affine model becomes a form whose right factor is the constant
    /// `e_0`, so `y = Ŵ x̂` is still `D((L̂x̂) ⊙ (R̂x̂))`.
    pub fn fold(model: &Model) -> Result<Self> {
        let bilinear_layers = model.architecture().bilinear_layers();
        if bilinear_layers > 1 {
            return Err(Error::NotOneBilinearForm { bilinear_layers });
        }
        let par = faer::Par::Seq;
        let mut before: Mat<f64> = Mat::identity(model.input_dim() + 1, model.input_dim() + 1);
        let mut form: Option<(Mat<f64>, Mat<f64>, Mat<f64>)> = None;
        for layer in model.layers() {
            match (pad_layer(layer), &mut form) {
                (PaddedLayer::Affine(w), None) => {
                    before = product(w.as_ref(), before.as_ref(), par)
                }
                (PaddedLayer::Affine(w), Some((_, _, down))) => {
                    *down = product(w.as_ref(), down.as_ref(), par)
                }
                (PaddedLayer::Bilinear { left, right, down }, None) => {
                    form = Some((
                        product(left.as_ref(), before.as_ref(), par),
                        product(right.as_ref(), before.as_ref(), par),
                        down,
                    ))
                }
                (PaddedLayer::Bilinear { .. }, Some(_)) => unreachable!("counted above"),
            }
        }
        let (left, right, down) = form.unwrap_or_else(|| {
            let units = before.nrows();
            let constant =
                Mat::from_fn(units, before.ncols(), |_, j| if j == 0 { 1.0 } else { 0.0 });
            (before, constant, Mat::identity(units, units))
        });
        let outputs = down.nrows() - 1;
        let down = Mat::from_fn(outputs, down.ncols(), |o, h| down[(o + 1, h)]);
        Ok(BilinearForm { left, right, down })
    }

    /// Number of hidden units after folding (biases and residual included).
    pub fn hidden(&self) -> usize {
        self.left.nrows()
    }

    /// Padded input width `d + 1`.
    pub fn padded_input(&self) -> usize {
        self.left.ncols()
    }

    /// Number of outputs `o`.
    pub fn outputs(&self) -> usize {
        self.down.nrows()
    }

    /// Materialises the symmetrised tensor, one `(d+1)×(d+1)` matrix per output:
    /// `B̃_o = ½ Σ_h D[o,h] (L̂_h R̂_hᵀ + R̂_h L̂_hᵀ)`. Costs `O(o·h·d²)` memory and
    /// time: the reference for tests and for per-class interaction matrices,
    /// never used by the similarity metrics themselves.
    pub fn interaction_matrices(&self) -> Vec<Mat<f64>> {
        let n = self.padded_input();
        (0..self.outputs())
            .map(|o| {
                let mut b = Mat::<f64>::zeros(n, n);
                for h in 0..self.hidden() {
                    let w = 0.5 * self.down[(o, h)];
                    if w == 0.0 {
                        continue;
                    }
                    for j in 0..n {
                        let (lj, rj) = (self.left[(h, j)], self.right[(h, j)]);
                        for i in 0..n {
                            b[(i, j)] += w * (self.left[(h, i)] * rj + self.right[(h, i)] * lj);
                        }
                    }
                }
                b
            })
            .collect()
    }
}
