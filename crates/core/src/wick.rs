//! Perfect matchings of Gaussian legs (Isserlis/Wick, MATH.md §3.1): the
//! moment `E[x_1 ⋯ x_n]` of centred jointly Gaussian variables is a sum over
//! the `(n−1)!!` ways to pair the legs. Groundwork for attention terms
//! (10 legs: 945 matchings).

/// Every perfect matching of legs `0..n` (n even), each as sorted pairs
/// (a reference for the tests).
#[cfg(test)]
pub fn perfect_matchings(n: usize) -> Vec<Vec<(usize, usize)>> {
    matchings(n, false)
        .into_iter()
        .map(|(pairs, _)| pairs)
        .collect()
}

/// `E[x_1 ⋯ x_n]` for a centred Gaussian with covariance `cov(i, j)` of leg
/// `i` and leg `j`, by summing over all perfect matchings (a reference for
/// the tests).
#[cfg(test)]
pub fn gaussian_moment(n: usize, cov: impl Fn(usize, usize) -> f64) -> f64 {
    perfect_matchings(n)
        .iter()
        .map(|m| m.iter().map(|&(i, j)| cov(i, j)).product::<f64>())
        .sum()
}

/// A partial matching: sorted pairs of legs and the sorted unmatched legs.
pub type PartialMatching = (Vec<(usize, usize)>, Vec<usize>);

/// Every partial matching of legs `0..n`: sorted pairs and the sorted legs
/// left unmatched (whose means enter the moment). `T(n)` of them (1, 1, 2,
/// 4, 10, 26, 76, …, 9496 for 10 legs).
pub fn partial_matchings(n: usize) -> Vec<PartialMatching> {
    matchings(n, true)
}

/// Matchings of legs `0..n`, with unmatched legs when `singles` is set
/// (perfect ones only otherwise). The first free leg is left unmatched or
/// paired with each later free leg in turn, so every matching comes once.
fn matchings(n: usize, singles: bool) -> Vec<PartialMatching> {
    fn extend(
        free: &[usize],
        singles_allowed: bool,
        current: &mut PartialMatching,
        out: &mut Vec<PartialMatching>,
    ) {
        let Some((&first, rest)) = free.split_first() else {
            out.push(current.clone());
            return;
        };
        if singles_allowed {
            current.1.push(first);
            extend(rest, singles_allowed, current, out);
            current.1.pop();
        }
        for (k, &partner) in rest.iter().enumerate() {
            current.0.push((first, partner));
            extend(&without(rest, k), singles_allowed, current, out);
            current.0.pop();
        }
    }
    let mut out = Vec::new();
    let legs: Vec<usize> = (0..n).collect();
    extend(&legs, singles, &mut (Vec::new(), Vec::new()), &mut out);
    out
}

/// Every ordering of `items` (`items.len()!` of them): the ways the legs
/// one term pairs across can be matched to as many legs of another.
pub(crate) fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.is_empty() {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (k, &first) in items.iter().enumerate() {
        for mut tail in permutations(&without(items, k)) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}

/// `items` without its `k`-th element.
fn without(items: &[usize], k: usize) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|&(m, _)| m != k)
        .map(|(_, &x)| x)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_double_factorials() {
        let counts: Vec<usize> = [0, 2, 4, 6, 8, 10]
            .iter()
            .map(|&n| perfect_matchings(n).len())
            .collect();
        assert_eq!(counts, vec![1, 1, 3, 15, 105, 945]);
        assert!(perfect_matchings(3).is_empty());
        let partial: Vec<usize> = (0..=10).map(|n| partial_matchings(n).len()).collect();
        assert_eq!(partial, vec![1, 1, 2, 4, 10, 26, 76, 232, 764, 2620, 9496]);
        let perfect_among_partial = partial_matchings(10)
            .iter()
            .filter(|(_, singles)| singles.is_empty())
            .count();
        assert_eq!(perfect_among_partial, 945);
        // Every matching of 10 legs covers each leg exactly once, and all are distinct.
        let all = perfect_matchings(10);
        let mut seen = std::collections::HashSet::new();
        for m in &all {
            let mut legs: Vec<usize> = m.iter().flat_map(|&(a, b)| [a, b]).collect();
            legs.sort_unstable();
            assert_eq!(legs, (0..10).collect::<Vec<_>>());
            assert!(seen.insert(m.clone()));
        }
    }

    #[test]
    fn fourth_moment_is_isserlis() {
        // One standard normal used four times: E[x⁴] = 3; six times: 15.
        assert_eq!(gaussian_moment(4, |_, _| 1.0), 3.0);
        assert_eq!(gaussian_moment(6, |_, _| 1.0), 15.0);
        // E[x y x y] with Var 1 and Cov(x, y) = ρ: 1 + 2ρ².
        let rho = 0.3;
        let cov = |i: usize, j: usize| if i % 2 == j % 2 { 1.0 } else { rho };
        assert!((gaussian_moment(4, cov) - (1.0 + 2.0 * rho * rho)).abs() < 1e-15);
    }
}
