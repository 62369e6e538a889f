//! Where a checkpoint series changed, and which output changed there, from
//! similarity matrices alone: no trigger, no data, no labels.
//!
//! The backdoor experiment's detection (EXPERIMENTS §1) for any series:
//! each boundary `k` splits the series into `0..k` and `k..n`; every output
//! slice (class or token) gets the contrast of that split (mean within-block
//! minus mean across-block similarity, [`crate::blocks::split_contrast`]).
//! A boundary's class-specific excess is its largest slice contrast minus
//! the median one: changes that move every output alike (early training)
//! score near 0, a change confined to one output stands out. The strength
//! of the most-changed output is its contrast in standard deviations above
//! the mean of the other outputs' contrasts.

use faer::MatRef;

use crate::blocks::{rank_by_change, rank_class_specific_splits, rank_splits};

/// One boundary of a series and the output that changed most across it.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// First checkpoint after the boundary.
    pub index: usize,
    /// Largest slice contrast minus the median one.
    pub excess: f64,
    /// The output whose slice changed most, and its contrast.
    pub output: (usize, f64),
    /// The runner-up output and its contrast.
    pub runner_up: Option<(usize, f64)>,
    /// The top output's contrast in standard deviations above the other
    /// outputs' mean (∞ when they all agree exactly).
    pub strength: f64,
    /// The total matrix's contrast at this boundary.
    pub total_contrast: f64,
}

/// What a series' matrices say about where it changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Changes {
    /// The best split of the total matrix (the phase boundary every output
    /// shares) and its contrast.
    pub phase: Option<(usize, f64)>,
    /// Up to `top` boundaries, most class-specific first, at least
    /// `min_block` checkpoints apart.
    pub changes: Vec<Change>,
}

/// Finds the phase boundary of `total` and the `top` most output-specific
/// boundaries of `slices` (each block at least `min_block` checkpoints).
pub fn find_changes(
    total: MatRef<'_, f64>,
    slices: &[MatRef<'_, f64>],
    top: usize,
    min_block: usize,
) -> Changes {
    let phase = rank_splits(total, min_block)
        .first()
        .map(|s| (s.index, s.contrast));
    let mut chosen: Vec<Change> = Vec::new();
    for split in rank_class_specific_splits(slices, min_block) {
        if chosen.len() == top {
            break;
        }
        if chosen
            .iter()
            .any(|c| c.index.abs_diff(split.index) < min_block.max(1))
        {
            continue;
        }
        let ranked = rank_by_change(slices, split.index);
        let others: Vec<f64> = ranked[1..].iter().map(|r| r.1).collect();
        chosen.push(Change {
            index: split.index,
            excess: split.excess,
            output: ranked[0],
            runner_up: ranked.get(1).copied(),
            strength: standard_deviations_above(ranked[0].1, &others),
            total_contrast: crate::blocks::split_contrast(total, split.index),
        });
    }
    Changes {
        phase,
        changes: chosen,
    }
}

/// `(x − mean) / sd` of `others` (sample standard deviation); ∞ when they
/// do not spread and `x` exceeds them, 0 when nothing to compare.
fn standard_deviations_above(x: f64, others: &[f64]) -> f64 {
    if others.len() < 2 {
        return 0.0;
    }
    let n = others.len() as f64;
    let mean = others.iter().sum::<f64>() / n;
    let var = others.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    match var.sqrt() {
        sd if sd > 0.0 => (x - mean) / sd,
        _ if x > mean => f64::INFINITY,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// Slices of `n` checkpoints: every output drifts a little at `drift`,
    /// output `hit` alone changes strongly at `attack`.
    fn series(n: usize, outputs: usize, drift: usize, attack: usize, hit: usize) -> Vec<Mat<f64>> {
        (0..outputs)
            .map(|c| {
                Mat::from_fn(n, n, |i, j| {
                    let mut v = if (i < drift) != (j < drift) {
                        0.8
                    } else {
                        0.95
                    };
                    v -= 0.002 * c as f64 * f64::from(u8::from((i < drift) != (j < drift)));
                    if c == hit && (i < attack) != (j < attack) {
                        v -= 0.4;
                    }
                    if i == j {
                        1.0
                    } else {
                        v
                    }
                })
            })
            .collect()
    }

    #[test]
    fn the_output_specific_change_is_found_beside_the_phase_boundary() {
        let slices = series(14, 10, 3, 9, 7);
        let refs: Vec<_> = slices.iter().map(|m| m.as_ref()).collect();
        let total = Mat::from_fn(14, 14, |i, j| {
            refs.iter().map(|m| m[(i, j)]).sum::<f64>() / 10.0
        });
        let found = find_changes(total.as_ref(), &refs, 3, 2);
        let first = &found.changes[0];
        assert_eq!((first.index, first.output.0), (9, 7));
        assert!(first.strength > 10.0, "{}", first.strength);
        assert!(found.changes.len() <= 3);
        for pair in found.changes.windows(2) {
            assert!(pair[0].excess >= pair[1].excess);
        }
        for (a, b) in found.changes.iter().zip(found.changes.iter().skip(1)) {
            assert!(a.index.abs_diff(b.index) >= 2);
        }
    }

    #[test]
    fn strength_is_standard_deviations_above_the_others() {
        assert!((standard_deviations_above(5.0, &[1.0, 2.0, 3.0]) - 3.0).abs() < 1e-12);
        assert_eq!(standard_deviations_above(1.0, &[0.5, 0.5]), f64::INFINITY);
        assert_eq!(standard_deviations_above(1.0, &[2.0]), 0.0);
    }
}
