//! Output cosine on data (MATH.md §4.2, EXPERIMENTS "Common conventions"):
//! per input, the cosine of the two logit vectors, `⟨y_a, y_b⟩ / max(‖y_a‖‖y_b‖, 1e-8)`,
//! then the mean over inputs. On logits, not softmax. An output that is
//! exactly zero (all-zero inputs to a model without biases) has no direction:
//! an error naming the input row, never a cosine of 0.

use faer::MatRef;

use crate::error::{Error, Result};
use crate::model::Model;

/// Guard of the per-sample cosine denominator (as PyTorch's `cosine_similarity`).
pub const COSINE_EPS: f64 = 1e-8;

/// Mean per-row cosine of two output batches of equal shape.
pub fn mean_row_cosine(ya: MatRef<'_, f64>, yb: MatRef<'_, f64>) -> Result<f64> {
    if ya.shape() != yb.shape() {
        return Err(Error::Mismatch {
            what: "output shape",
            a: format!("{:?}", ya.shape()),
            b: format!("{:?}", yb.shape()),
        });
    }
    if ya.nrows() == 0 {
        return Err(Error::TooFewInputs {
            what: "output cosine",
            needed: 1,
            given: 0,
        });
    }
    let mut total = 0.0;
    for i in 0..ya.nrows() {
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for j in 0..ya.ncols() {
            let (x, y) = (ya[(i, j)], yb[(i, j)]);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        if aa == 0.0 || bb == 0.0 {
            return Err(Error::ZeroNorm {
                what: format!(
                    "the output of model {} on input row {i}",
                    if aa == 0.0 { "a" } else { "b" }
                ),
            });
        }
        total += ab / (aa.sqrt() * bb.sqrt()).max(COSINE_EPS);
    }
    Ok(total / ya.nrows() as f64)
}

/// Output cosine of two models on the rows of `inputs` (`n × d_in`): the
/// mean over inputs of `⟨y_a, y_b⟩ / max(‖y_a‖‖y_b‖, 1e-8)` on the logits
/// (MATH.md §4.2).
///
/// ```
/// use tensim_core::output_cosine::output_cosine;
/// use tensim_core::symmetry::rescale_hidden;
/// use tensim_core::{Architecture, LayerShape, Mat, Residual};
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: true, right_bias: true, down_bias: true,
///         residual: Residual::None,
///     }],
/// };
/// let (a, b) = (arch.random_model(1).unwrap(), arch.random_model(2).unwrap());
/// let inputs = Mat::from_fn(5, 3, |i, j| (i as f64 - 2.0) * 0.5 + j as f64 * 0.25);
///
/// // A function-preserving rescale of the hidden units gives the same outputs.
/// let rescaled = rescale_hidden(&a, 0, &[2.0, 0.5, -1.0, 3.0]).unwrap();
/// let same = output_cosine(&a, &rescaled, inputs.as_ref()).unwrap();
/// assert!((same - 1.0).abs() < 1e-12);
/// assert!(output_cosine(&a, &b, inputs.as_ref()).unwrap().abs() <= 1.0);
/// ```
pub fn output_cosine(a: &Model, b: &Model, inputs: MatRef<'_, f64>) -> Result<f64> {
    mean_row_cosine(a.forward(inputs)?.as_ref(), b.forward(inputs)?.as_ref())
}
