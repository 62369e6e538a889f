//! Output cosine on data (MATH.md §4.2, EXPERIMENTS "Common conventions"):
//! per input, the cosine of the two logit vectors, `⟨y_a, y_b⟩ / max(‖y_a‖‖y_b‖, 1e-8)`,
//! then the mean over inputs. On logits, not softmax.

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
        return Err(Error::Invalid(
            "output cosine needs at least one input".into(),
        ));
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
        total += ab / (aa.sqrt() * bb.sqrt()).max(COSINE_EPS);
    }
    Ok(total / ya.nrows() as f64)
}

/// Output cosine of two models on the rows of `inputs` (`n × d_in`).
pub fn output_cosine(a: &Model, b: &Model, inputs: MatRef<'_, f64>) -> Result<f64> {
    mean_row_cosine(a.forward(inputs)?.as_ref(), b.forward(inputs)?.as_ref())
}
