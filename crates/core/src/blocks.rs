//! Block structure of a similarity matrix over checkpoints: phase contrasts
//! (EXPERIMENTS "Δ of a metric") and phase-boundary detection without labels.

use faer::MatRef;

/// Mean of `m[i, j]` over `i ∈ rows`, `j ∈ cols`, `i ≠ j` (NaN if empty).
pub fn block_mean(
    m: MatRef<'_, f64>,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for i in rows {
        for j in cols.clone() {
            if i != j {
                sum += m[(i, j)];
                count += 1;
            }
        }
    }
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Δ of a two-phase run: mean over off-diagonal pairs inside phase B
/// (`b_start..n`) minus mean over pairs with one checkpoint in A
/// (`0..b_start`) and one in B.
pub fn phase_delta(m: MatRef<'_, f64>, b_start: usize) -> f64 {
    let n = m.nrows();
    block_mean(m, b_start..n, b_start..n) - block_mean(m, 0..b_start, b_start..n)
}

/// A split of checkpoints into `0..index` and `index..n`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhaseSplit {
    /// First checkpoint of the second block.
    pub index: usize,
    /// Mean within-block similarity minus mean across-block similarity.
    pub contrast: f64,
}

/// Contrast of a split: mean over all off-diagonal within-block pairs (both
/// blocks pooled) minus the mean over across-block pairs.
pub fn split_contrast(m: MatRef<'_, f64>, index: usize) -> f64 {
    let n = m.nrows();
    let (mut within, mut wn) = (0.0, 0usize);
    for (lo, hi) in [(0, index), (index, n)] {
        for i in lo..hi {
            for j in lo..hi {
                if i != j {
                    within += m[(i, j)];
                    wn += 1;
                }
            }
        }
    }
    within / wn.max(1) as f64 - block_mean(m, 0..index, index..n)
}

/// Every admissible split (each block has at least `min_block` checkpoints),
/// best first: the phase boundary found from the matrix alone.
pub fn rank_splits(m: MatRef<'_, f64>, min_block: usize) -> Vec<PhaseSplit> {
    let n = m.nrows();
    let min_block = min_block.max(1);
    let mut splits: Vec<PhaseSplit> = (min_block..=n.saturating_sub(min_block))
        .map(|index| PhaseSplit {
            index,
            contrast: split_contrast(m, index),
        })
        .filter(|s| s.contrast.is_finite())
        .collect();
    splits.sort_by(|a, b| b.contrast.total_cmp(&a.contrast));
    splits
}

/// How much one matrix (e.g. a class slice) changed across a boundary:
/// mean similarity within each block minus across, as [`split_contrast`].
/// Ranking class slices by it names the class a change concerns.
pub fn rank_by_change(slices: &[MatRef<'_, f64>], index: usize) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = slices
        .iter()
        .enumerate()
        .map(|(c, m)| (c, split_contrast(*m, index)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// A boundary where one class changed more than the others.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassSpecificSplit {
    /// First checkpoint of the second block.
    pub index: usize,
    /// The class whose slice changed most across the boundary.
    pub class: usize,
    /// Its contrast minus the median contrast over all classes.
    pub excess: f64,
}

/// Boundaries ranked by how *class-specific* the change across them is:
/// for each split, the largest class-slice contrast minus the median one.
///
/// A change that concerns every class alike (early training, learning-rate
/// effects) scores near zero; a change confined to one class (a backdoor that
/// relabels to it, a forgotten digit) stands out. Uses only the slice matrices.
pub fn rank_class_specific_splits(
    slices: &[MatRef<'_, f64>],
    min_block: usize,
) -> Vec<ClassSpecificSplit> {
    let Some(first) = slices.first() else {
        return Vec::new();
    };
    let n = first.nrows();
    let min_block = min_block.max(1);
    let mut out: Vec<ClassSpecificSplit> = (min_block..=n.saturating_sub(min_block))
        .filter_map(|index| {
            let ranked = rank_by_change(slices, index);
            let mut values: Vec<f64> = ranked.iter().map(|r| r.1).collect();
            values.sort_by(f64::total_cmp);
            let median = values[values.len() / 2];
            let excess = ranked[0].1 - median;
            excess.is_finite().then_some(ClassSpecificSplit {
                index,
                class: ranked[0].0,
                excess,
            })
        })
        .collect();
    out.sort_by(|a, b| b.excess.total_cmp(&a.excess));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    fn two_blocks(n: usize, k: usize, inside: f64, across: f64) -> Mat<f64> {
        Mat::from_fn(n, n, |i, j| {
            if i == j {
                1.0
            } else if (i < k) == (j < k) {
                inside
            } else {
                across
            }
        })
    }

    #[test]
    fn finds_a_planted_boundary_and_computes_delta() {
        let m = two_blocks(12, 7, 0.9, 0.4);
        let best = rank_splits(m.as_ref(), 2)[0];
        assert_eq!(best.index, 7);
        assert!((best.contrast - 0.5).abs() < 1e-12);
        assert!((phase_delta(m.as_ref(), 7) - 0.5).abs() < 1e-12);
        assert!((block_mean(m.as_ref(), 0..7, 0..7) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn ranks_the_slice_that_changed() {
        let flat = two_blocks(10, 6, 0.8, 0.8);
        let changed = two_blocks(10, 6, 0.9, 0.2);
        let slices = [flat.as_ref(), changed.as_ref(), flat.as_ref()];
        let ranked = rank_by_change(&slices, 6);
        assert_eq!(ranked[0].0, 1);
        assert!(ranked[0].1 > ranked[1].1 + 0.5);
    }

    #[test]
    fn class_specific_boundary_beats_a_global_change() {
        // Every class changes a lot at checkpoint 2 (early training); only
        // class 3 changes at checkpoint 8 (the attack).
        let n = 12;
        let global = |i: usize, j: usize| if (i < 2) != (j < 2) { 0.3 } else { 0.95 };
        let make = |attacked: bool| {
            Mat::from_fn(n, n, move |i, j| {
                let base = global(i, j);
                if attacked && (i < 8) != (j < 8) {
                    base - 0.3
                } else {
                    base
                }
            })
        };
        let (plain, hit) = (make(false), make(true));
        let slices: Vec<MatRef<'_, f64>> = (0..6)
            .map(|c| if c == 3 { hit.as_ref() } else { plain.as_ref() })
            .collect();
        let best = rank_class_specific_splits(&slices, 2)[0];
        assert_eq!((best.index, best.class), (8, 3));
        assert!(best.excess > 0.2);
        // The plain total-matrix split is fooled by the global change.
        assert_eq!(rank_splits(plain.as_ref(), 2)[0].index, 2);
    }
}
