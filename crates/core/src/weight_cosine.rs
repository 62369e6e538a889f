//! Matrix (weight) cosine: the "local" baseline of MATH.md §4.
//!
//! Cosine of flattened raw weights, per layer and over all parameters
//! concatenated. Invariant to no symmetry of the network: permuting hidden
//! units or rescaling them changes it, although the function is unchanged.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::similarity::cosine_of;

/// Weight cosine per layer and over all parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightCosine {
    /// One cosine per layer (all of that layer's tensors concatenated).
    pub per_layer: Vec<f64>,
    /// Cosine of every parameter concatenated.
    pub all: f64,
}

/// Sums `⟨a,b⟩`, `‖a‖²`, `‖b‖²` over tensors.
#[derive(Clone, Copy, Default)]
struct Dots {
    ab: f64,
    aa: f64,
    bb: f64,
}

impl Dots {
    fn add(&mut self, a: &[f64], b: &[f64]) {
        for (&x, &y) in a.iter().zip(b) {
            self.ab += x * y;
            self.aa += x * x;
            self.bb += y * y;
        }
    }
    fn cosine(self, what: impl Fn() -> String) -> Result<f64> {
        cosine_of(self.ab, self.aa, self.bb, what)
    }
}

/// Matrix cosine of two models of identical architecture.
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
    let layers = arch_a.layers.len();
    let mut per_layer = vec![Dots::default(); layers];
    let mut all = Dots::default();
    for ((spec, x), y) in specs_a.iter().zip(&pa).zip(&pb) {
        let layer: usize = spec
            .name
            .split('.')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        per_layer[layer].add(x, y);
        all.add(x, y);
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
