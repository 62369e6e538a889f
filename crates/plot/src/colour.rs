//! Colour scales (EXPERIMENTS "Common conventions").

/// How heatmap values map to colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColourScale {
    /// Red (low) – white (middle) – blue (high), linear between the 1st and
    /// 99th percentile of the off-diagonal entries (all entries when not
    /// square). White sits at 0 when the range straddles 0, else at its midpoint.
    Diverging,
    /// White to dark blue, linear between the 1st and 99th percentile, for
    /// magnitudes such as frequency shares.
    Sequential,
}

/// The 1st and 99th percentiles of the finite values, excluding the diagonal
/// of an `n×n` matrix when `square_n` is `Some(n)` (linear interpolation).
pub fn percentile_range(values: &[f64], square_n: Option<usize>) -> (f64, f64) {
    let mut v: Vec<f64> = values
        .iter()
        .enumerate()
        .filter(|&(k, x)| x.is_finite() && square_n.is_none_or(|n| k / n != k % n))
        .map(|(_, &x)| x)
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    let (lo, hi) = (at(0.01), at(0.99));
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

fn mix(a: (f64, f64, f64), b: (f64, f64, f64), t: f64) -> (u8, u8, u8) {
    let t = t.clamp(0.0, 1.0);
    let c = |x: f64, y: f64| (x + (y - x) * t).round().clamp(0.0, 255.0) as u8;
    (c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// The ten categorical colours of matplotlib's `tab10`: blue, orange, green,
/// red, purple, brown, pink, grey, olive, cyan.
pub const TAB10: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

const RED: (f64, f64, f64) = (178.0, 24.0, 43.0);
const WHITE: (f64, f64, f64) = (255.0, 255.0, 255.0);
const BLUE: (f64, f64, f64) = (33.0, 102.0, 172.0);

/// Diverging colour of `x` for the range `(lo, hi)` with white at `mid`.
pub fn diverging(x: f64, lo: f64, hi: f64, mid: f64) -> (u8, u8, u8) {
    if x <= mid {
        mix(WHITE, RED, (mid - x) / (mid - lo).max(1e-300))
    } else {
        mix(WHITE, BLUE, (x - mid) / (hi - mid).max(1e-300))
    }
}

/// Sequential colour of `x` in `(0, hi)`.
pub fn sequential(x: f64, hi: f64) -> (u8, u8, u8) {
    mix(WHITE, (8.0, 48.0, 107.0), x / hi.max(1e-300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_skip_the_diagonal() {
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        let (lo, hi) = percentile_range(&values, None);
        assert!((lo - 1.0).abs() < 1e-12 && (hi - 99.0).abs() < 1e-12);
        // A 3×3 matrix whose diagonal is huge: ignored.
        let m = [1e9, 0.2, 0.3, 0.2, 1e9, 0.4, 0.3, 0.4, 1e9];
        let (lo, hi) = percentile_range(&m, Some(3));
        assert!(lo >= 0.2 && hi <= 0.4, "{lo} {hi}");
    }

    #[test]
    fn diverging_ends_and_middle() {
        let (r, g, b) = diverging(0.0, 0.0, 1.0, 0.5);
        assert!(r > 150 && g < 60 && b < 60, "low end is red");
        assert_eq!(diverging(0.5, 0.0, 1.0, 0.5), (255, 255, 255));
        let (r, _, b) = diverging(1.0, 0.0, 1.0, 0.5);
        assert!(b > 150 && r < 60, "high end is blue");
        assert_eq!(sequential(0.0, 2.0), (255, 255, 255));
    }
}
