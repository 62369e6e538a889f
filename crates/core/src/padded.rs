//! Padded forms of layers (MATH.md §1): the input gets a constant coordinate,
//! `x̂ = [1; x]`, so biases become weight columns and every layer, residual
//! blocks included, is either an affine map `ŷ = Ŵ x̂` or one bilinear form
//! `ŷ = D̂ ((L̂ x̂) ⊙ (R̂ x̂))` with `ŷ_0 = 1`.

use faer::Mat;

use crate::model::{Bilinear, Layer, Linear};

/// A layer in padded coordinates, in f64.
#[derive(Clone, Debug)]
pub(crate) enum PaddedLayer {
    /// `Ŵ = [[1, 0], [b, W]]`, shape `(out+1)×(in+1)`.
    Affine(Mat<f64>),
    /// `L̂, R̂ ∈ R^(h'×(in+1))`, `D̂ ∈ R^((out+1)×h')`; the last hidden unit is the
    /// constant unit `L̂ = R̂ = e_0` whose `D̂` column is `[1; s·b_D]`.
    Bilinear {
        left: Mat<f64>,
        right: Mat<f64>,
        down: Mat<f64>,
    },
}

pub(crate) fn pad_linear(l: &Linear) -> Mat<f64> {
    let (out, inp) = l.weight.shape();
    let mut w = Mat::zeros(out + 1, inp + 1);
    w[(0, 0)] = 1.0;
    for i in 0..out {
        w[(i + 1, 0)] = l.bias.as_ref().map_or(0.0, |b| b[i]);
        for j in 0..inp {
            w[(i + 1, j + 1)] = l.weight[(i, j)];
        }
    }
    w
}

/// Padded bilinear form of a block, with the residual folded in as extra hidden
/// units (`L̂ = e_i`, `R̂ = e_0`, `D̂ = keep·e_i`) and one constant unit; the
/// bilinear units and the down bias carry `mix` ([`crate::Residual::coefficients`]).
pub(crate) fn pad_bilinear(b: &Bilinear) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    let (hidden, inp) = b.left.shape();
    let out = b.down.nrows();
    let (keep, s) = b.residual.coefficients();
    let skip = if b.residual.carries_input() { inp } else { 0 };
    let units = hidden + skip + 1;
    let mut left = Mat::zeros(units, inp + 1);
    let mut right = Mat::zeros(units, inp + 1);
    let mut down = Mat::zeros(out + 1, units);
    for h in 0..hidden {
        left[(h, 0)] = b.left_bias.as_ref().map_or(0.0, |v| v[h]);
        right[(h, 0)] = b.right_bias.as_ref().map_or(0.0, |v| v[h]);
        for j in 0..inp {
            left[(h, j + 1)] = b.left[(h, j)];
            right[(h, j + 1)] = b.right[(h, j)];
        }
        for o in 0..out {
            down[(o + 1, h)] = s * b.down[(o, h)];
        }
    }
    for i in 0..skip {
        let unit = hidden + i;
        left[(unit, i + 1)] = 1.0;
        right[(unit, 0)] = 1.0;
        down[(i + 1, unit)] = keep;
    }
    let constant = units - 1;
    left[(constant, 0)] = 1.0;
    right[(constant, 0)] = 1.0;
    down[(0, constant)] = 1.0;
    if let Some(bias) = &b.down_bias {
        for o in 0..out {
            down[(o + 1, constant)] = s * bias[o];
        }
    }
    (left, right, down)
}

pub(crate) fn pad_layer(layer: &Layer) -> PaddedLayer {
    match layer {
        Layer::Linear(l) => PaddedLayer::Affine(pad_linear(l)),
        Layer::Bilinear(b) => {
            let (left, right, down) = pad_bilinear(b);
            PaddedLayer::Bilinear { left, right, down }
        }
    }
}
