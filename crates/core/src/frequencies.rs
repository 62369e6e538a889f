//! Fourier frequencies a modular-arithmetic model uses, read from its weights
//! alone (EXPERIMENTS §3).
//!
//! For each output class `c` the symmetrised interaction matrix of the inputs
//! (constant coordinate dropped), `B_c = ½ (Lᵀ diag(D_c) R + Rᵀ diag(D_c) L)`;
//! its `top` eigenvectors of largest `|λ|`; the magnitude of the discrete
//! Fourier transform of the first `period` entries of each (the `a` half of
//! `one-hot(a) ⊕ one-hot(b)`), weighted by `|λ|`; normalised to sum 1 per class,
//! then averaged over classes: one distribution over frequencies
//! `0..=period/2` per checkpoint.
//!
//! The transform is evaluated directly (`O(period²)` per vector, 113² ≈ 13k
//! multiply-adds): at these sizes it costs less than the eigendecomposition.

use faer::{Mat, Side};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::folded::BilinearForm;
use crate::gemm::product;

/// `|Σ_t v_t e^{−2πi k t / n}|` for `k = 0..=n/2`.
pub fn dft_magnitudes(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    (0..=n / 2)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, &x) in v.iter().enumerate() {
                let angle = -2.0 * std::f64::consts::PI * ((k * t) % n) as f64 / n as f64;
                re += x * angle.cos();
                im += x * angle.sin();
            }
            re.hypot(im)
        })
        .collect()
}

/// The symmetrised interaction matrix of output `c` over the unpadded inputs.
pub fn interaction_matrix(form: &BilinearForm, c: usize) -> Mat<f64> {
    let d = form.padded_input() - 1;
    let h = form.hidden();
    let weighted_left = Mat::from_fn(h, d, |u, i| form.down[(c, u)] * form.left[(u, i + 1)]);
    let right = form.right.as_ref().submatrix(0, 1, h, d);
    let m = product(weighted_left.transpose(), right, faer::Par::Seq);
    Mat::from_fn(d, d, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]))
}

/// Frequency distribution (length `period/2 + 1`, sums to 1) of a model whose
/// inputs are `one-hot(a) ⊕ one-hot(b)` with `a, b < period`.
pub fn frequency_marginal(form: &BilinearForm, period: usize, top: usize) -> Result<Vec<f64>> {
    let d = form.padded_input() - 1;
    if period == 0 || d < period {
        return Err(Error::PeriodTooLong { inputs: d, period });
    }
    let bins = period / 2 + 1;
    let per_class: Vec<Vec<f64>> = (0..form.outputs())
        .into_par_iter()
        .map(|c| -> Result<Vec<f64>> {
            let b = interaction_matrix(form, c);
            let eig = b
                .self_adjoint_eigen(Side::Lower)
                .map_err(|e| Error::Eigendecomposition {
                    class: c,
                    reason: format!("{e:?}"),
                })?;
            let values = eig.S().column_vector();
            let vectors = eig.U();
            let mut order: Vec<usize> = (0..d).collect();
            order.sort_by(|&x, &y| values[y].abs().total_cmp(&values[x].abs()));
            let mut spectrum = vec![0.0; bins];
            for &k in order.iter().take(top) {
                let a_part: Vec<f64> = (0..period).map(|t| vectors[(t, k)]).collect();
                for (s, m) in spectrum.iter_mut().zip(dft_magnitudes(&a_part)) {
                    *s += values[k].abs() * m;
                }
            }
            let total: f64 = spectrum.iter().sum();
            if total > 0.0 {
                spectrum.iter_mut().for_each(|s| *s /= total);
            }
            Ok(spectrum)
        })
        .collect::<Result<_>>()?;
    let classes = per_class.len().max(1) as f64;
    Ok((0..bins)
        .map(|k| per_class.iter().map(|s| s[k]).sum::<f64>() / classes)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A form whose hidden units are cosines and sines of one frequency over
    /// both halves of the input: every interaction matrix lives in that frequency.
    fn planted(period: usize, freq: usize, classes: usize) -> BilinearForm {
        let d = 2 * period;
        let wave = |k: usize, phase: f64, i: usize| -> f64 {
            let t = (i % period) as f64;
            (2.0 * std::f64::consts::PI * k as f64 * t / period as f64 + phase).cos()
        };
        let h = 4;
        let left = Mat::from_fn(h, d + 1, |u, i| {
            if i == 0 {
                0.0
            } else {
                wave(freq, 0.4 * u as f64, i - 1)
            }
        });
        let right = Mat::from_fn(h, d + 1, |u, i| {
            if i == 0 {
                0.0
            } else {
                wave(freq, 1.3 + 0.7 * u as f64, i - 1)
            }
        });
        let down = Mat::from_fn(classes, h, |c, u| ((c * 7 + u * 3) % 5) as f64 - 2.0 + 0.1);
        BilinearForm { left, right, down }
    }

    #[test]
    fn recovers_a_planted_frequency() {
        for freq in [3, 14, 41] {
            let form = planted(113, freq, 6);
            let marginal = frequency_marginal(&form, 113, 4).unwrap();
            assert_eq!(marginal.len(), 57);
            let peak = (0..57)
                .max_by(|&a, &b| marginal[a].total_cmp(&marginal[b]))
                .unwrap();
            assert_eq!(peak, freq);
            assert!(
                marginal[freq] > 0.95,
                "mass at the planted frequency: {}",
                marginal[freq]
            );
            assert!((marginal.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn dft_of_a_pure_cosine() {
        let n = 113;
        let v: Vec<f64> = (0..n)
            .map(|t| (2.0 * std::f64::consts::PI * 5.0 * t as f64 / n as f64).cos())
            .collect();
        let m = dft_magnitudes(&v);
        assert!((m[5] - n as f64 / 2.0).abs() < 1e-9);
        assert!(m
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != 5)
            .all(|(_, &x)| x < 1e-9));
    }
}
