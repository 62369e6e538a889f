//! Floating-point types the metrics run in.
//!
//! Every metric is generic over [`Scalar`]: `f64` is the reference path used by
//! the tests of MATH.md §5, `f32` is the fast path. Weights are always stored in
//! `f64`; a metric converts its prepared (normalised) factors to the scalar it
//! runs in, so `f32` never sees raw magnitudes (MATH.md §3.6, "Normalisation").

/// A real scalar the metrics can run in (`f32` or `f64`).
pub trait Scalar:
    faer::traits::RealField + Copy + Send + Sync + std::fmt::Debug + Default + 'static
{
    /// Short name used in reports and benchmarks.
    const NAME: &'static str;
    /// Converts from the `f64` reference representation (rounding for `f32`).
    fn of(value: f64) -> Self;
    /// Widens to `f64` for accumulation and reporting.
    fn to_f64(self) -> f64;
}

impl Scalar for f64 {
    const NAME: &'static str = "f64";
    #[inline]
    fn of(value: f64) -> Self {
        value
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn of(value: f64) -> Self {
        value as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}
