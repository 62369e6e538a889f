//! Matrix (weight) cosine: the "local" baseline of MATH.md §4.1.
//!
//! Cosine of flattened raw weights, per layer and over all parameters
//! concatenated. Invariant to no symmetry of the network: permuting hidden
//! units or rescaling them changes it, although the function is unchanged.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::similarity::CosineSums;

/// Weight cosine per layer and over all parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightCosine {
    /// One cosine per layer (all of that layer's tensors concatenated).
    pub per_layer: Vec<f64>,
    /// Cosine of every parameter concatenated.
    pub all: f64,
}

/// Matrix cosine of two models of identical architecture: `⟨w_a, w_b⟩ /
/// (‖w_a‖ ‖w_b‖)` of the flattened raw weights, per layer and over all
/// parameters (MATH.md §4.1). Not invariant to the network's symmetries
/// (MATH.md §5.4): permuting hidden units changes it, not the function.
///
/// ```
/// use tensim_core::symmetry::permute_hidden;
/// use tensim_core::{tensor_similarity, weight_cosine, Architecture, LayerShape, Residual};
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: false, right_bias: false, down_bias: false,
///         residual: Residual::None,
///     }],
/// };
/// let a = arch.random_model(1).unwrap();
/// let same = weight_cosine(&a, &a).unwrap();
/// assert!((same.all - 1.0).abs() < 1e-12);
/// assert_eq!(same.per_layer.len(), 1);
///
/// let permuted = permute_hidden(&a, 0, &[3, 2, 1, 0]).unwrap();
/// assert!(weight_cosine(&a, &permuted).unwrap().all < 0.999);
/// assert!((tensor_similarity(&a, &permuted).unwrap().total - 1.0).abs() < 1e-12);
/// ```
pub fn weight_cosine(a: &Model, b: &Model) -> Result<WeightCosine> {
    let (arch_a, arch_b) = (a.architecture(), b.architecture());
    let (specs_a, specs_b) = (arch_a.parameter_specs(), arch_b.parameter_specs());
    if specs_a != specs_b {
        let first = specs_a
            .iter()
            .zip(&specs_b)
            .find(|(x, y)| x != y)
            .map(|(x, y)| {
                (
                    format!("{} {:?}", x.name, x.shape),
                    format!("{} {:?}", y.name, y.shape),
                )
            })
            .unwrap_or_else(|| {
                (
                    format!("{} tensors", specs_a.len()),
                    format!("{} tensors", specs_b.len()),
                )
            });
        return Err(Error::Mismatch {
            what: "architecture (matrix cosine compares weights entry by entry)",
            a: first.0,
            b: first.1,
        });
    }
    let (pa, pb) = (a.parameters(), b.parameters());
    let (sa, sb) = (exact_scale(&pa), exact_scale(&pb));
    let layers = arch_a.layers.len();
    let mut per_layer = vec![CosineSums::default(); layers];
    let mut all = CosineSums::default();
    for ((spec, x), y) in specs_a.iter().zip(&pa).zip(&pb) {
        let layer: usize = spec
            .name
            .split('.')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let pairs = || x.iter().zip(y).map(|(u, v)| (u * sa, v * sb));
        per_layer[layer].add(pairs());
        all.add(pairs());
    }
    Ok(WeightCosine {
        per_layer: per_layer
            .into_iter()
            .enumerate()
            .map(|(i, d)| d.cosine(|| format!("layer {i}")))
            .collect::<Result<_>>()?,
        all: all.cosine(|| "the weights".to_string())?,
    })
}

/// Cosine of two parameter lists of one shape (every tensor flattened and
/// concatenated): the matrix cosine of networks of any kind.
pub fn parameter_cosine(a: &[Vec<f64>], b: &[Vec<f64>]) -> Result<f64> {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
        return Err(Error::Mismatch {
            what: "parameter shapes (matrix cosine compares weights entry by entry)",
            a: format!("{} tensors", a.len()),
            b: format!("{} tensors", b.len()),
        });
    }
    let (sa, sb) = (exact_scale(a), exact_scale(b));
    let mut all = CosineSums::default();
    for (x, y) in a.iter().zip(b) {
        all.add(x.iter().zip(y).map(|(u, v)| (u * sa, v * sb)));
    }
    all.cosine(|| "the parameters".to_string())
}

/// A power of two `2^-e` that brings the largest magnitude among `params`
/// into `[1, 2)`. A cosine is unchanged by scaling either side, and scaling
/// by a power of two is exact, so the result equals the unscaled one bit for
/// bit wherever that one neither overflows (weights near 1e200, whose
/// squares are infinite) nor underflows (near 1e-200, whose squares are 0).
fn exact_scale(params: &[Vec<f64>]) -> f64 {
    let largest = params
        .iter()
        .flatten()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if largest > 0.0 {
        2f64.powi(-(largest.log2().floor() as i32))
    } else {
        1.0
    }
}
