//! The residual of a component in checkpoint JSON.
//!
//! Version-1 files store a lerp scale `residual_scale` (1 = no residual). An
//! additive residual `x + s·f(x)` stores its scale there too and adds
//! `"residual_kind": "add"`, a field older readers refuse (they deny unknown
//! fields) instead of misreading the model as a lerp.

use serde::{Deserialize, Serialize};
use tensim_core::Residual;

/// The kind of a residual that the lerp scale alone does not describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResidualKind {
    /// `x + s·f(x)`.
    Add,
}

/// `(residual_scale, residual_kind)` as written to a file.
pub(crate) fn residual_to_json(r: Residual) -> (f64, Option<ResidualKind>) {
    match r {
        Residual::Add(s) => (s, Some(ResidualKind::Add)),
        _ => (r.lerp_scale().expect("not additive"), None),
    }
}

/// The residual a file's `(residual_scale, residual_kind)` describes.
pub(crate) fn residual_from_json(scale: f64, kind: Option<ResidualKind>) -> Residual {
    match kind {
        Some(ResidualKind::Add) => Residual::Add(scale),
        None => Residual::from_lerp_scale(scale),
    }
}
