//! Thin wrappers over faer's matrix product, so the metric code reads as algebra.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

use crate::scalar::Scalar;

/// `A · B`.
pub(crate) fn product<T: Scalar>(a: MatRef<'_, T>, b: MatRef<'_, T>, par: Par) -> Mat<T> {
    let mut out = Mat::<T>::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, T::of(1.0), par);
    out
}

/// `A · Bᵀ`, the Gram-style product used by every metric.
pub(crate) fn product_t<T: Scalar>(a: MatRef<'_, T>, b: MatRef<'_, T>, par: Par) -> Mat<T> {
    product(a, b.transpose(), par)
}

/// `A · S · Bᵀ`, the congruence that carries a second moment through a linear map.
pub(crate) fn congruence<T: Scalar>(
    a: MatRef<'_, T>,
    s: Option<MatRef<'_, T>>,
    b: MatRef<'_, T>,
    par: Par,
) -> Mat<T> {
    match s {
        Some(s) => product_t(product(a, s, par).as_ref(), b, par),
        None => product_t(a, b, par),
    }
}

/// The entries `[⟨L_h, L_k⟩, ⟨L_h, R_k⟩, ⟨R_h, L_k⟩, ⟨R_h, R_k⟩]` of a
/// stacked Gram `[L_a; R_a] · M · [L_b; R_b]ᵀ` of bilinear factors with `ha`
/// and `hb` hidden units, for hidden unit `h` of `a` and `k` of `b`.
pub(crate) fn stacked_gram_blocks<T: Scalar>(
    gram: MatRef<'_, T>,
    (ha, hb): (usize, usize),
    (h, k): (usize, usize),
) -> [T; 4] {
    [
        gram[(h, k)],
        gram[(h, hb + k)],
        gram[(ha + h, k)],
        gram[(ha + h, hb + k)],
    ]
}

/// Converts an `f64` matrix to the scalar a metric runs in, multiplying by `scale`.
pub(crate) fn cast_scaled<T: Scalar>(m: MatRef<'_, f64>, scale: f64) -> Mat<T> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| T::of(m[(i, j)] * scale))
}

/// Largest absolute entry, in f64 (0 for an empty matrix).
pub(crate) fn max_abs<T: Scalar>(m: MatRef<'_, T>) -> f64 {
    let mut best = 0.0f64;
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            best = best.max(m[(i, j)].to_f64().abs());
        }
    }
    best
}

/// The factor a metric divides a matrix by: its largest absolute entry, or 1
/// when that is zero (an all-zero factor stays zero either way).
pub(crate) fn scale_of<T: Scalar>(m: MatRef<'_, T>) -> f64 {
    let s = max_abs(m);
    if s > 0.0 && s.is_finite() {
        s
    } else {
        1.0
    }
}
