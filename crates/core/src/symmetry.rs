//! The symmetries that leave a bilinear network's function unchanged
//! (MATH.md §5.3). Tensor and Gaussian similarity must be 1 across them;
//! matrix cosine is not.
//!
//! ```
//! use tensim_core::symmetry::{permute_hidden, rescale_hidden, swap_left_right};
//! use tensim_core::{gaussian_similarity, tensor_similarity, weight_cosine};
//! use tensim_core::{Architecture, LayerShape, Residual};
//!
//! let arch = Architecture {
//!     layers: vec![LayerShape::Bilinear {
//!         input: 3, hidden: 4, output: 2,
//!         left_bias: true, right_bias: true, down_bias: true,
//!         residual: Residual::None,
//!     }],
//! };
//! let a = arch.random_model(1).unwrap();
//! let transformed = [
//!     permute_hidden(&a, 0, &[2, 0, 3, 1]).unwrap(),
//!     rescale_hidden(&a, 0, &[2.0, -0.5, 3.0, 0.25]).unwrap(),
//!     swap_left_right(&a, 0).unwrap(),
//! ];
//! for b in &transformed {
//!     assert!((tensor_similarity(&a, b).unwrap().total - 1.0).abs() < 1e-12);
//!     assert!((gaussian_similarity(&a, b).unwrap().0.total - 1.0).abs() < 1e-12);
//!     assert!(weight_cosine(&a, b).unwrap().all < 0.999);
//! }
//! ```

use crate::error::{Error, Result};
use crate::model::{Bilinear, Layer, Model};

/// A copy of `model` with bilinear layer `layer` changed by `change`,
/// checked again as a whole (the transforms keep every shape).
fn with_bilinear(
    model: &Model,
    layer: usize,
    change: impl FnOnce(&mut Bilinear) -> Result<()>,
) -> Result<Model> {
    let mut layers = model.layers().to_vec();
    match layers.get_mut(layer) {
        Some(Layer::Bilinear(b)) => change(b)?,
        _ => return Err(Error::NotBilinear { layer }),
    }
    Model::new(layers)
}

/// Permutes the hidden units of a bilinear layer: new unit `h` is old unit
/// `permutation[h]` (rows of `L`, `R` and their biases, columns of `D`).
pub fn permute_hidden(model: &Model, layer: usize, permutation: &[usize]) -> Result<Model> {
    with_bilinear(model, layer, |b| permute_units(b, permutation))
}

fn permute_units(b: &mut Bilinear, permutation: &[usize]) -> Result<()> {
    let hidden = b.left.nrows();
    let mut seen = vec![false; hidden];
    if permutation.len() != hidden
        || !permutation
            .iter()
            .all(|&p| p < hidden && !std::mem::replace(&mut seen[p], true))
    {
        return Err(Error::NotAPermutation { hidden });
    }
    let old = b.clone();
    for (h, &p) in permutation.iter().enumerate() {
        for j in 0..old.left.ncols() {
            b.left[(h, j)] = old.left[(p, j)];
            b.right[(h, j)] = old.right[(p, j)];
        }
        for o in 0..old.down.nrows() {
            b.down[(o, h)] = old.down[(o, p)];
        }
        for (new, old) in [
            (&mut b.left_bias, &old.left_bias),
            (&mut b.right_bias, &old.right_bias),
        ] {
            if let (Some(n), Some(o)) = (new.as_mut(), old.as_ref()) {
                n[h] = o[p];
            }
        }
    }
    Ok(())
}

/// Rescales hidden unit `h`: `L_h ← α_h L_h` (with its bias), `D_{:,h} ← D_{:,h}/α_h`.
pub fn rescale_hidden(model: &Model, layer: usize, alphas: &[f64]) -> Result<Model> {
    with_bilinear(model, layer, |b| rescale_units(b, alphas))
}

fn rescale_units(b: &mut Bilinear, alphas: &[f64]) -> Result<()> {
    if alphas.len() != b.left.nrows() || alphas.iter().any(|&a| a == 0.0 || !a.is_finite()) {
        return Err(Error::BadScales);
    }
    for (h, &a) in alphas.iter().enumerate() {
        for j in 0..b.left.ncols() {
            b.left[(h, j)] *= a;
        }
        if let Some(bias) = b.left_bias.as_mut() {
            bias[h] *= a;
        }
        for o in 0..b.down.nrows() {
            b.down[(o, h)] /= a;
        }
    }
    Ok(())
}

/// Swaps `L` and `R` (and their biases): `(Lx)⊙(Rx)` is symmetric.
pub fn swap_left_right(model: &Model, layer: usize) -> Result<Model> {
    with_bilinear(model, layer, |b| {
        std::mem::swap(&mut b.left, &mut b.right);
        std::mem::swap(&mut b.left_bias, &mut b.right_bias);
        Ok(())
    })
}
