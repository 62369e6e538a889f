//! Monte-Carlo estimate of the Gaussian functional cosine (MATH.md §4.4): the
//! ground truth the exact moment propagation must match.
//!
//! With per-sample `p = f_a·f_b`, `q = ‖f_a‖²`, `r = ‖f_b‖²` (outputs centred by
//! their sample means for the centred form), the estimate is
//! `P̄ / sqrt(Q̄ R̄)`. Its standard error comes from the delta method:
//! `Var ≈ gᵀ Σ g / n` with `g = (1/sqrt(Q̄R̄), −cos/(2Q̄), −cos/(2R̄))` and `Σ`
//! the sample covariance of `(p, q, r)`.

use faer::Mat;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::gaussian::Centring;
use crate::model::Model;
use crate::transformer::Transformer;

/// An estimate with its standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The estimated cosine `P̄ / sqrt(Q̄ R̄)`.
    pub value: f64,
    /// Its delta-method standard error, `sqrt(gᵀ Σ g / n)`.
    pub std_error: f64,
    /// Number of input samples `n` the estimate averages.
    pub samples: usize,
    /// The largest share one sample has of `Σ‖y_a‖²` or `Σ‖y_b‖²`: near 1,
    /// a single draw dominates (heavy tails) and the standard error cannot
    /// be trusted.
    pub largest_share: f64,
}

const CHUNK: usize = 4096;

/// Standard normal inputs `n × d` from a seeded generator (the same seed gives the same inputs).
pub fn gaussian_inputs(rows: usize, dim: usize, rng: &mut StdRng) -> Mat<f64> {
    let mut m = Mat::zeros(rows, dim);
    // Fill row by row so the stream does not depend on the chunking.
    for i in 0..rows {
        for j in 0..dim {
            m[(i, j)] = StandardNormal.sample(rng);
        }
    }
    m
}

/// Calls `visit(f_a, f_b)` on the outputs of both models for `samples` Gaussian inputs.
fn for_each_chunk(
    a: &Model,
    b: &Model,
    samples: usize,
    seed: u64,
    mut visit: impl FnMut(&Mat<f64>, &Mat<f64>),
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done = 0;
    while done < samples {
        let rows = CHUNK.min(samples - done);
        let x = gaussian_inputs(rows, a.input_dim(), &mut rng);
        visit(&a.forward(x.as_ref())?, &b.forward(x.as_ref())?);
        done += rows;
    }
    Ok(())
}

/// The most samples one estimate may draw: 10^8, 2.4 GB of per-sample
/// moments (hours of forward passes at the paper's sizes).
pub const MAX_SAMPLES: usize = 100_000_000;

/// At least 2 samples (a standard error needs them), at most [`MAX_SAMPLES`].
pub fn check_samples(samples: usize) -> Result<()> {
    if samples < 2 {
        return Err(Error::TooFewSamples { samples });
    }
    if samples > MAX_SAMPLES {
        return Err(Error::TooManySamples {
            samples,
            max: MAX_SAMPLES,
        });
    }
    Ok(())
}

/// Monte-Carlo Gaussian cosine of two models' outputs on `x ~ N(0, I)`:
/// `P̄ / sqrt(Q̄ R̄)` over `samples` inputs drawn from `seed`, with its
/// delta-method standard error (MATH.md §4.4). It agrees with the exact
/// [`gaussian_similarity`](crate::gaussian_similarity) within its error (MATH.md §5.5).
///
/// ```
/// use tensim_core::monte_carlo::monte_carlo_similarity;
/// use tensim_core::{gaussian_similarity, Architecture, Centring, LayerShape, Residual};
///
/// let arch = Architecture {
///     layers: vec![LayerShape::Bilinear {
///         input: 3, hidden: 4, output: 2,
///         left_bias: true, right_bias: true, down_bias: true,
///         residual: Residual::None,
///     }],
/// };
/// let (a, b) = (arch.random_model(1).unwrap(), arch.random_model(2).unwrap());
///
/// let estimate = monte_carlo_similarity(&a, &b, 4000, 7, Centring::Uncentred).unwrap();
/// let (exact, _) = gaussian_similarity(&a, &b).unwrap();
/// assert_eq!(estimate.samples, 4000);
/// assert!(estimate.std_error > 0.0);
/// assert!((estimate.value - exact.total).abs() < 5.0 * estimate.std_error);
/// ```
pub fn monte_carlo_similarity(
    a: &Model,
    b: &Model,
    samples: usize,
    seed: u64,
    centring: Centring,
) -> Result<Estimate> {
    if a.input_dim() != b.input_dim() || a.output_dim() != b.output_dim() {
        return Err(Error::Mismatch {
            what: "input/output dimensions",
            a: format!("{}→{}", a.input_dim(), a.output_dim()),
            b: format!("{}→{}", b.input_dim(), b.output_dim()),
        });
    }
    check_samples(samples)?;
    let o = a.output_dim();
    let (mut mean_a, mut mean_b) = (vec![0.0; o], vec![0.0; o]);
    if centring == Centring::Centred {
        for_each_chunk(a, b, samples, seed, |ya, yb| {
            for j in 0..o {
                for i in 0..ya.nrows() {
                    mean_a[j] += ya[(i, j)];
                    mean_b[j] += yb[(i, j)];
                }
            }
        })?;
        for m in mean_a.iter_mut().chain(mean_b.iter_mut()) {
            *m /= samples as f64;
        }
    }
    let mut pqr: Vec<[f64; 3]> = Vec::with_capacity(samples);
    for_each_chunk(a, b, samples, seed, |ya, yb| {
        for i in 0..ya.nrows() {
            let (mut p, mut q, mut r) = (0.0, 0.0, 0.0);
            for j in 0..o {
                let (x, y) = (ya[(i, j)] - mean_a[j], yb[(i, j)] - mean_b[j]);
                p += x * y;
                q += x * x;
                r += y * y;
            }
            pqr.push([p, q, r]);
        }
    })?;
    cosine_estimate(&pqr)
}

/// `P̄ / sqrt(Q̄ R̄)` and its delta-method standard error `sqrt(gᵀ Σ g / n)`
/// from per-sample `(p, q, r) = (⟨y_a,y_b⟩, ‖y_a‖², ‖y_b‖²)`, with
/// `g = ∇(P/sqrt(QR))` at the means and `Σ` their sample covariance.
///
/// The samples are first divided by the largest `q` and `r` (`p` by the
/// geometric mean of both): the cosine and its standard error do not change,
/// and the squares of heavy-tailed samples stay finite. A spread that is
/// still not finite is an error, never a standard error of 0.
pub fn cosine_estimate(pqr: &[[f64; 3]]) -> Result<Estimate> {
    let samples = pqr.len();
    let n = samples as f64;
    let (qmax, rmax) = pqr
        .iter()
        .fold((0.0f64, 0.0f64), |(q, r), v| (q.max(v[1]), r.max(v[2])));
    if !(qmax > 0.0 && rmax > 0.0) || samples < 2 {
        return Err(Error::ZeroNorm {
            what: "a model's sampled output".into(),
        });
    }
    if !(qmax.is_finite() && rmax.is_finite()) {
        return Err(Error::NotFinite {
            what: "a sampled squared output norm (outputs too large for f64)".into(),
            value: qmax.max(rmax),
        });
    }
    let unit = [1.0 / (qmax.sqrt() * rmax.sqrt()), 1.0 / qmax, 1.0 / rmax];
    let scaled = |v: &[f64; 3]| [v[0] * unit[0], v[1] * unit[1], v[2] * unit[2]];
    let mut mean = [0.0f64; 3];
    for v in pqr.iter().map(scaled) {
        for k in 0..3 {
            mean[k] += v[k] / n;
        }
    }
    let mut cov = [[0.0; 3]; 3];
    for v in pqr.iter().map(scaled) {
        for k in 0..3 {
            for l in 0..3 {
                cov[k][l] += (v[k] - mean[k]) * (v[l] - mean[l]) / (n - 1.0);
            }
        }
    }
    let [p, q, r] = mean;
    let value = p / (q.sqrt() * r.sqrt());
    let g = [
        1.0 / (q.sqrt() * r.sqrt()),
        -value / (2.0 * q),
        -value / (2.0 * r),
    ];
    let mut var = 0.0;
    for k in 0..3 {
        for l in 0..3 {
            var += g[k] * cov[k][l] * g[l];
        }
    }
    if !var.is_finite() {
        return Err(Error::NotFinite {
            what: "the variance of the Monte-Carlo estimate".into(),
            value: var,
        });
    }
    Ok(Estimate {
        value,
        std_error: (var.max(0.0) / n).sqrt(),
        samples,
        // The largest scaled q is 1, so its share of the sum is 1/(n q̄).
        largest_share: (1.0 / (q * n)).max(1.0 / (r * n)),
    })
}

/// Monte-Carlo Gaussian cosine of two transformers' logits on sequences of
/// `positions` independent `N(0, I_vocab)` inputs (uncentred, all positions
/// and logits flattened: `p = Σ_{t,c} f_a f_b` per sample).
/// Sequences are drawn in chunks of 256 from generators seeded by
/// `(seed, chunk)` and evaluated in parallel; the result depends only on the seed.
pub fn sequence_monte_carlo(
    a: &Transformer,
    b: &Transformer,
    positions: usize,
    samples: usize,
    seed: u64,
) -> Result<Estimate> {
    use rayon::prelude::*;
    let widths = [
        ("vocabulary", a.vocab(), b.vocab()),
        ("logits", a.outputs(), b.outputs()),
    ];
    for (what, wa, wb) in widths {
        if wa != wb {
            return Err(Error::Mismatch {
                what,
                a: wa.to_string(),
                b: wb.to_string(),
            });
        }
    }
    check_samples(samples)?;
    const SEQ_CHUNK: usize = 256;
    let chunks = samples.div_ceil(SEQ_CHUNK);
    let per_chunk: Vec<Vec<[f64; 3]>> = (0..chunks)
        .into_par_iter()
        .map(|k| -> Result<Vec<[f64; 3]>> {
            let mut rng =
                StdRng::seed_from_u64(seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let rows = SEQ_CHUNK.min(samples - k * SEQ_CHUNK);
            // The chunk's sequences stacked, drawn row by row (as one by one).
            let x = gaussian_inputs(rows * positions, a.vocab(), &mut rng);
            let ya = a.forward_stacked(x.as_ref(), positions)?;
            let yb = b.forward_stacked(x.as_ref(), positions)?;
            Ok((0..rows)
                .map(|s| {
                    let (mut p, mut q, mut r) = (0.0, 0.0, 0.0);
                    for j in 0..ya.ncols() {
                        for i in s * positions..(s + 1) * positions {
                            let (x, y) = (ya[(i, j)], yb[(i, j)]);
                            p += x * y;
                            q += x * x;
                            r += y * y;
                        }
                    }
                    [p, q, r]
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    let pqr: Vec<[f64; 3]> = per_chunk.into_iter().flatten().collect();
    cosine_estimate(&pqr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_scale_free_and_an_unknown_spread_is_an_error() {
        let ordinary = [[1.0, 2.0, 1.0], [0.5, 1.0, 1.5], [0.2, 0.5, 0.4]];
        let e = cosine_estimate(&ordinary).unwrap();
        assert!(e.std_error > 0.0 && e.value.is_finite());
        // Heavy tails: scaled first, so the squares stay finite and the
        // dominant sample shows in the share instead of overflowing.
        let heavy = [[1e300, 1e300, 1e300], [1.0, 1.0, 1.0], [2.0, 3.0, 1.0]];
        let e = cosine_estimate(&heavy).unwrap();
        assert!(e.std_error.is_finite() && e.largest_share > 0.999, "{e:?}");
        // The same estimate at any scale.
        let big: Vec<[f64; 3]> = ordinary
            .iter()
            .map(|v| [v[0] * 1e10, v[1] * 1e10, v[2] * 1e10])
            .collect();
        let f = cosine_estimate(&big).unwrap();
        assert!(
            (f.value - e.value).abs() < 1.0
                && (f.value - cosine_estimate(&ordinary).unwrap().value).abs() < 1e-12
        );
        // Squared norms beyond f64: an error that says so.
        let overflow = [[1.0, f64::INFINITY, 1.0], [1.0, 1.0, 1.0]];
        let err = cosine_estimate(&overflow).unwrap_err();
        assert!(matches!(err, Error::NotFinite { .. }), "{err}");
    }
}
