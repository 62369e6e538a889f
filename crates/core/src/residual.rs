//! How a component's output joins the stream it reads (MATH.md §1).
//!
//! Every residual form tensim knows is a fixed linear combination of the
//! component's input `x` and its output `f(x)`:
//!
//! ```text
//! y = keep · x + mix · f(x)
//! None:     keep = 0,     mix = 1     (a plain layer, any output width)
//! Lerp(s):  keep = 1 − s, mix = s     (s ∈ [0, 1], square)
//! Add(s):   keep = 1,     mix = s     (s finite, square)
//! ```
//!
//! Forward passes, padded forms and the moment propagation read only
//! [`Residual::coefficients`], so each form is implemented once.
//!
//! ```
//! use tensim_core::Residual;
//! assert_eq!(Residual::Lerp(0.25).coefficients(), (0.75, 0.25));
//! assert_eq!(Residual::Add(0.35).coefficients(), (1.0, 0.35));
//! assert_eq!(Residual::from_lerp_scale(1.0), Residual::None);
//! ```

use crate::error::{Error, Result};

/// The residual connection of one component: `y = keep·x + mix·f(x)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Residual {
    /// `y = f(x)`: no residual stream.
    None,
    /// `y = (1 − s)·x + s·f(x)`, `s ∈ [0, 1]`.
    Lerp(f64),
    /// `y = x + s·f(x)`.
    Add(f64),
}

impl Residual {
    /// The residual of the legacy single-number form `lerp(x, f(x), s)`,
    /// where `s = 1` meant "no residual".
    pub fn from_lerp_scale(s: f64) -> Self {
        if s == 1.0 {
            Residual::None
        } else {
            Residual::Lerp(s)
        }
    }

    /// `(keep, mix)` of `y = keep·x + mix·f(x)`.
    pub fn coefficients(self) -> (f64, f64) {
        match self {
            Residual::None => (0.0, 1.0),
            Residual::Lerp(s) => (1.0 - s, s),
            Residual::Add(s) => (1.0, s),
        }
    }

    /// The scale on `f(x)` (1 for [`Residual::None`]).
    pub fn mix(self) -> f64 {
        self.coefficients().1
    }

    /// Whether the input is carried through (`keep ≠ 0` for some scale), so
    /// that the component must map a space to itself.
    pub fn carries_input(self) -> bool {
        !matches!(self, Residual::None)
    }

    /// The scale of a lerp, `1` for no residual, `None` for an additive one:
    /// what the version-1 checkpoint format stores as `residual_scale`.
    pub fn lerp_scale(self) -> Option<f64> {
        match self {
            Residual::None => Some(1.0),
            Residual::Lerp(s) => Some(s),
            Residual::Add(_) => None,
        }
    }

    /// Checks the scale and, when the input is carried, that the component is
    /// square (`input == output`); `layer` names the component in the error.
    pub fn validate(self, layer: usize, input: usize, output: usize) -> Result<()> {
        let refuse = |reason: String| Err(Error::Residual { layer, reason });
        match self {
            Residual::Lerp(s) if !(0.0..=1.0).contains(&s) => {
                return refuse(format!("residual scale {s} is outside [0, 1]"));
            }
            Residual::Add(s) if !s.is_finite() => {
                return refuse(format!("additive residual scale {s} is not finite"));
            }
            _ => {}
        }
        if self.carries_input() && input != output {
            return refuse(format!(
                "a residual block ({}) must map {input} to {input} dimensions, not to {output}",
                self.describe()
            ));
        }
        Ok(())
    }

    /// `y = lerp(x, f(x), s)`-style text for tables and errors.
    pub fn describe(self) -> String {
        match self {
            Residual::None => "no residual".into(),
            Residual::Lerp(s) => format!("residual s={s}"),
            Residual::Add(s) => format!("additive residual x + {s}·f(x)"),
        }
    }

    /// Feeds the residual to a fingerprint: the legacy lerp scale for `None`
    /// and `Lerp` (so fingerprints of existing models do not change), a tag
    /// and the scale for `Add`.
    pub(crate) fn hash_into(self, h: &mut crate::model::Fnv) {
        match self {
            Residual::None => h.eat(1.0f64.to_bits()),
            Residual::Lerp(s) => h.eat(s.to_bits()),
            Residual::Add(s) => {
                h.eat(0xadd);
                h.eat(s.to_bits());
            }
        }
    }

    /// `keep·x + mix·y` element-wise (`x` and `y` of one shape); `y`
    /// unchanged when there is no residual.
    pub(crate) fn apply(self, x: faer::MatRef<'_, f64>, y: faer::Mat<f64>) -> faer::Mat<f64> {
        match self {
            Residual::None => y,
            _ => {
                let (keep, mix) = self.coefficients();
                faer::Mat::from_fn(y.nrows(), y.ncols(), |i, j| {
                    keep * x[(i, j)] + mix * y[(i, j)]
                })
            }
        }
    }
}
