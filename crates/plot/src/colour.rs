//! Colour scales (EXPERIMENTS "Common conventions"): one honest mapping per
//! figure, drawn with a colour bar, never stretched to a panel's percentiles.

/// How heatmap values map to colours. The limits are part of the scale, so
/// panels that are compared share one scale by construction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColourScale {
    /// Red (−`limit`) – white (0) – blue (+`limit`): the sign of a value is
    /// its hue, its magnitude the depth of the hue.
    Diverging { limit: f64 },
    /// White (`lo`) to dark blue (`hi`), for values that are never negative.
    Sequential { lo: f64, hi: f64 },
}

impl ColourScale {
    /// The honest scale for every finite value in `panels` together: a
    /// sequential map from the smallest to the largest value when none is
    /// negative, else a diverging map symmetric about 0 out to the largest
    /// magnitude. Nothing is clipped. Pass all panels that a reader compares.
    pub fn fit<'a>(panels: impl IntoIterator<Item = &'a [f64]>) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in panels.into_iter().flatten() {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if lo > hi {
            return ColourScale::Sequential { lo: 0.0, hi: 1.0 };
        }
        if lo >= 0.0 {
            if hi > lo {
                ColourScale::Sequential { lo, hi }
            } else {
                // One value throughout: it sits mid-scale.
                let pad = 0.5 * lo.abs().max(1e-12);
                ColourScale::Sequential {
                    lo: lo - pad,
                    hi: hi + pad,
                }
            }
        } else {
            ColourScale::Diverging {
                limit: lo.abs().max(hi.abs()),
            }
        }
    }

    /// The values at the two ends of the colour bar.
    pub fn range(&self) -> (f64, f64) {
        match *self {
            ColourScale::Diverging { limit } => (-limit, limit),
            ColourScale::Sequential { lo, hi } => (lo, hi),
        }
    }

    /// The colour of `v`; values past the ends take the end colours, NaN and
    /// infinities are grey.
    pub fn colour(&self, v: f64) -> (u8, u8, u8) {
        if !v.is_finite() {
            return GREY;
        }
        match *self {
            ColourScale::Diverging { limit } => {
                let t = v / limit.max(f64::MIN_POSITIVE);
                if t < 0.0 {
                    mix(WHITE, RED, -t)
                } else {
                    mix(WHITE, BLUE, t)
                }
            }
            ColourScale::Sequential { lo, hi } => mix(
                WHITE,
                DARK_BLUE,
                (v - lo) / (hi - lo).max(f64::MIN_POSITIVE),
            ),
        }
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
const DARK_BLUE: (f64, f64, f64) = (8.0, 48.0, 107.0);
const GREY: (u8, u8, u8) = (160, 160, 160);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_values_get_a_sequential_scale_over_their_whole_range() {
        let a = [0.7, 0.9, f64::NAN];
        let b = [1.0, 0.8];
        let scale = ColourScale::fit([&a[..], &b[..]]);
        assert_eq!(scale, ColourScale::Sequential { lo: 0.7, hi: 1.0 });
        assert_eq!(scale.colour(0.7), (255, 255, 255));
        assert_eq!(scale.colour(1.0), (8, 48, 107));
        assert_eq!(scale.colour(f64::NAN), GREY);
    }

    #[test]
    fn any_negative_value_makes_the_scale_diverge_symmetrically_about_zero() {
        let values = [-0.001, 0.5, 0.9];
        let scale = ColourScale::fit([&values[..]]);
        assert_eq!(scale, ColourScale::Diverging { limit: 0.9 });
        assert_eq!(scale.range(), (-0.9, 0.9));
        // A tiny negative value is a pale red, not a saturated one.
        let (r, g, b) = scale.colour(-0.001);
        assert!(r == 255 && g >= 253 && b >= 253, "{r} {g} {b}");
        assert_eq!(scale.colour(0.0), (255, 255, 255));
        let (r, _, b) = scale.colour(-0.9);
        assert!(r > 150 && b < 60, "the negative end is red");
        let (r, _, b) = scale.colour(0.9);
        assert!(b > 150 && r < 60, "the positive end is blue");
    }

    #[test]
    fn degenerate_inputs_still_give_a_usable_scale() {
        assert_eq!(
            ColourScale::fit([&[f64::NAN][..]]),
            ColourScale::Sequential { lo: 0.0, hi: 1.0 }
        );
        let one = ColourScale::fit([&[1.0, 1.0][..]]);
        assert_eq!(one, ColourScale::Sequential { lo: 0.5, hi: 1.5 });
        assert_eq!(ColourScale::fit([&[0.0][..]]).range().0, -1e-12 * 0.5);
    }
}
