//! Contraction orders and their arithmetic: a greedy order, an exhaustive
//! subset search for small networks, and [`Plan::cost`], the floating-point
//! operations and largest intermediate of executing a plan.

use super::Label;

/// What executing a plan costs: floating-point operations (a multiply-add
/// counts 2) and the largest tensor it holds (inputs, intermediates or the
/// result), in entries.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Floating-point operations (a multiply-add counts 2).
    pub flops: f64,
    /// Entries of the largest tensor held at any one time.
    pub largest: usize,
}

/// A contraction order: pairs of positions in the shrinking list of tensors
/// (the result of each step is appended at the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The steps in order: `(i, j)` with `i < j` contracts the tensors at
    /// positions `i` and `j` of the current list, removes both and appends
    /// the result.
    pub steps: Vec<(usize, usize)>,
}

impl Plan {
    /// The cost of contracting a network of these shapes along this plan,
    /// counted the way [`contract_pair`](super::contract_pair) executes each
    /// step: labels only one side carries and nothing needs are summed first
    /// (one addition per entry), then a GEMM over every remaining label of
    /// both sides (`2·Π dims` flops, batch and summed labels included); a
    /// final sum over labels the output drops.
    pub fn cost(&self, shapes: &[(Vec<Label>, Vec<usize>)], output: &[Label]) -> Cost {
        let size = |t: &(Vec<Label>, Vec<usize>)| t.1.iter().product::<usize>();
        let mut current: Vec<(Vec<Label>, Vec<usize>)> = shapes.to_vec();
        let mut cost = Cost {
            flops: 0.0,
            largest: current.iter().map(size).max().unwrap_or(0),
        };
        for &(i, j) in &self.steps {
            if j >= current.len() || i >= j {
                break;
            }
            let needed = |l: &Label, current: &[(Vec<Label>, Vec<usize>)]| {
                output.contains(l)
                    || current
                        .iter()
                        .enumerate()
                        .any(|(k, t)| k != i && k != j && t.0.contains(l))
            };
            let (a, b) = (&current[i], &current[j]);
            let mut union: Vec<(Label, usize)> = Vec::new();
            let mut result: Vec<(Label, usize)> = Vec::new();
            for (t, other) in [(a, b), (b, a)] {
                let mut lonely = 1usize;
                for (&l, &d) in t.0.iter().zip(&t.1) {
                    let shared = other.0.contains(&l);
                    if !shared && !needed(&l, &current) {
                        lonely = lonely.max(2);
                        continue;
                    }
                    if !union.iter().any(|u| u.0 == l) {
                        union.push((l, d));
                    }
                    if needed(&l, &current) && !result.iter().any(|u| u.0 == l) {
                        result.push((l, d));
                    }
                }
                if lonely > 1 {
                    cost.flops += size(t) as f64;
                }
            }
            cost.flops += 2.0 * union.iter().map(|u| u.1 as f64).product::<f64>();
            let merged = (
                result.iter().map(|u| u.0).collect::<Vec<_>>(),
                result.iter().map(|u| u.1).collect::<Vec<_>>(),
            );
            cost.largest = cost.largest.max(size(&merged));
            current.remove(j);
            current.remove(i);
            current.push(merged);
        }
        if let Some(last) = current.last() {
            if last.0.iter().any(|l| !output.contains(l)) {
                cost.flops += size(last) as f64;
            }
        }
        cost
    }
}

/// Greedy order for a topology (labels and dimensions of every tensor): at
/// each step the pair whose result is smallest, preferring pairs that share
/// an index. Depends only on shapes, so it is found once per architecture.
pub fn greedy_plan(shapes: &[(Vec<Label>, Vec<usize>)], output: &[Label]) -> Plan {
    let mut current: Vec<(Vec<Label>, Vec<usize>)> = shapes.to_vec();
    let mut steps = Vec::new();
    // Labels (with dimensions) of the result of contracting tensors i and j.
    let result =
        |current: &[(Vec<Label>, Vec<usize>)], i: usize, j: usize| -> (Vec<Label>, Vec<usize>) {
            let needed = |l: &Label| {
                output.contains(l)
                    || current
                        .iter()
                        .enumerate()
                        .any(|(k, t)| k != i && k != j && t.0.contains(l))
            };
            let (mut labels, mut dims) = (Vec::new(), Vec::new());
            for (l, d) in current[i]
                .0
                .iter()
                .zip(&current[i].1)
                .chain(current[j].0.iter().zip(&current[j].1))
            {
                if needed(l) && !labels.contains(l) {
                    labels.push(*l);
                    dims.push(*d);
                }
            }
            (labels, dims)
        };
    while current.len() > 1 {
        let mut best: Option<(bool, usize, usize, usize)> = None;
        for i in 0..current.len() {
            for j in (i + 1)..current.len() {
                let connected = current[i].0.iter().any(|l| current[j].0.contains(l));
                let size = result(&current, i, j).1.iter().product::<usize>();
                let candidate = (!connected, size, i, j);
                if best.is_none_or(|b| (candidate.0, candidate.1) < (b.0, b.1)) {
                    best = Some(candidate);
                }
            }
        }
        let (_, _, i, j) = best.expect("at least two tensors");
        let merged = result(&current, i, j);
        current.remove(j);
        current.remove(i);
        current.push(merged);
        steps.push((i, j));
    }
    Plan { steps }
}

/// The cheapest order for a small network (at most [`OPTIMAL_PLAN_MAX`]
/// tensors, labels below 64), by dynamic programming over subsets; larger
/// networks fall back to [`greedy_plan`].
///
/// Cost of one pairwise contraction: the product of the dimensions of every
/// label either side carries (multiply-adds, batch and summed indices
/// included) plus the size of its result (memory traffic). The best order of
/// a set `S` is the cheapest split `S = S₁ ∪ S₂` of best orders; found once
/// per topology and cached by the caller.
pub fn optimal_plan(shapes: &[(Vec<Label>, Vec<usize>)], output: &[Label]) -> Plan {
    let n = shapes.len();
    let labels_fit = shapes
        .iter()
        .flat_map(|s| s.0.iter())
        .chain(output)
        .all(|&l| l < 64);
    if !(2..=OPTIMAL_PLAN_MAX).contains(&n) || !labels_fit {
        return greedy_plan(shapes, output);
    }
    let mut dim = [1.0f64; 64];
    for (labels, dims) in shapes {
        for (&l, &d) in labels.iter().zip(dims) {
            dim[l as usize] = d as f64;
        }
    }
    let size = |mask: u64| -> f64 {
        (0..64)
            .filter(|b| mask >> b & 1 == 1)
            .map(|b| dim[b as usize])
            .product()
    };
    let out_mask: u64 = output.iter().fold(0, |m, &l| m | 1 << l);
    let tensor_mask: Vec<u64> = shapes
        .iter()
        .map(|s| s.0.iter().fold(0, |m, &l| m | 1 << l))
        .collect();
    let full = (1usize << n) - 1;
    // Labels carried by the tensors of a subset, and those it must keep.
    let mut carried = vec![0u64; full + 1];
    for s in 1..=full {
        let low = s.trailing_zeros() as usize;
        carried[s] = carried[s & (s - 1)] | tensor_mask[low];
    }
    let kept = |s: usize| carried[s] & (carried[full & !s] | out_mask);
    let mut best = vec![f64::INFINITY; full + 1];
    let mut split = vec![0usize; full + 1];
    for k in 0..n {
        best[1 << k] = 0.0;
    }
    for s in 1..=full {
        if s.count_ones() < 2 {
            continue;
        }
        let result = size(kept(s));
        // Enumerate splits with the lowest tensor on the first side.
        let low = s & s.wrapping_neg();
        let rest = s & !low;
        let mut sub = rest;
        loop {
            let s1 = low | sub;
            if s1 != s {
                let s2 = s & !s1;
                let cost = best[s1] + best[s2] + size(kept(s1) | kept(s2)) + result;
                if cost < best[s] {
                    best[s] = cost;
                    split[s] = s1;
                }
            }
            if sub == 0 {
                break;
            }
            sub = (sub - 1) & rest;
        }
    }
    // Post-order walk, replaying the shrinking list of `contract`.
    fn walk(s: usize, split: &[usize], slots: &mut Vec<usize>, steps: &mut Vec<(usize, usize)>) {
        if s.count_ones() < 2 {
            return;
        }
        let s1 = split[s];
        let s2 = s & !s1;
        walk(s1, split, slots, steps);
        walk(s2, split, slots, steps);
        let p1 = slots.iter().position(|&x| x == s1).expect("built");
        let p2 = slots.iter().position(|&x| x == s2).expect("built");
        let (i, j) = (p1.min(p2), p1.max(p2));
        slots.remove(j);
        slots.remove(i);
        slots.push(s);
        steps.push((i, j));
    }
    let mut slots: Vec<usize> = (0..n).map(|k| 1 << k).collect();
    let mut steps = Vec::new();
    walk(full, &split, &mut slots, &mut steps);
    Plan { steps }
}

/// Networks up to this many tensors get [`optimal_plan`]'s exhaustive search.
pub const OPTIMAL_PLAN_MAX: usize = 12;
