//! Tensor-network contraction (groundwork for sequence models, MATH.md §3):
//! dense tensors with labelled indices, a greedy contraction order found once
//! per topology, and each pairwise contraction executed as
//! permute + reshape + GEMM (faer).
//!
//! Indices shared by two tensors are summed unless they are still needed
//! (by the output or a tensor not yet contracted); needed shared indices are
//! batch indices (hyperedges such as sequence positions) and the GEMM runs
//! once per batch element. An index only one tensor carries and nothing else
//! needs is summed out first.

use faer::{MatRef, Par};

use crate::error::{Error, Result};
use crate::gemm::product;

/// Products with at most this many multiply-adds run as plain loops.
const SMALL_PRODUCT: usize = 1 << 15;

/// An index label.
pub type Label = u32;

/// A dense f64 tensor, row-major, one label per axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub labels: Vec<Label>,
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// The flat offsets `Σ_k index[k]·stride[k]` of every index of `dims`, in
/// row-major order (one offset, 0, for no axes): the walk of a strided view.
pub(crate) fn strided_offsets<'a>(
    dims: &'a [usize],
    stride: &'a [usize],
) -> impl Iterator<Item = usize> + 'a {
    let mut index = vec![0usize; dims.len()];
    let mut offset = 0usize;
    (0..dims.iter().product::<usize>()).map(move |_| {
        let current = offset;
        for k in (0..dims.len()).rev() {
            index[k] += 1;
            offset += stride[k];
            if index[k] < dims[k] {
                break;
            }
            offset -= stride[k] * dims[k];
            index[k] = 0;
        }
        current
    })
}

impl Tensor {
    /// A tensor from labels, dimensions and row-major values.
    pub fn new(labels: Vec<Label>, dims: Vec<usize>, data: Vec<f64>) -> Result<Self> {
        if labels.len() != dims.len() || dims.iter().product::<usize>() != data.len() {
            return Err(Error::Invalid(format!(
                "tensor with labels {labels:?} and dims {dims:?} cannot hold {} values",
                data.len()
            )));
        }
        let mut sorted = labels.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Invalid(format!(
                "repeated label in {labels:?} (take a diagonal first)"
            )));
        }
        Ok(Tensor { labels, dims, data })
    }

    fn dim_of(&self, label: Label) -> usize {
        self.dims[self
            .labels
            .iter()
            .position(|&l| l == label)
            .expect("label present")]
    }

    /// The same values with axes in the order of `order` (a permutation of the labels).
    pub fn permuted(&self, order: &[Label]) -> Tensor {
        let axes: Vec<usize> = order
            .iter()
            .map(|l| {
                self.labels
                    .iter()
                    .position(|x| x == l)
                    .expect("label present")
            })
            .collect();
        let dims: Vec<usize> = axes.iter().map(|&a| self.dims[a]).collect();
        let src = strides(&self.dims);
        let moved: Vec<usize> = axes.iter().map(|&a| src[a]).collect();
        let n = self.data.len();
        let mut data = Vec::with_capacity(n);
        // Copy runs along the last output axis; an odometer walks the others.
        let rank = dims.len();
        if rank == 0 || n == 0 {
            data.extend_from_slice(&self.data);
        } else {
            let (run, step) = (dims[rank - 1], moved[rank - 1]);
            for offset in strided_offsets(&dims[..rank - 1], &moved[..rank - 1]) {
                if step == 1 {
                    data.extend_from_slice(&self.data[offset..offset + run]);
                } else {
                    data.extend((0..run).map(|r| self.data[offset + r * step]));
                }
            }
        }
        Tensor {
            labels: order.to_vec(),
            dims,
            data,
        }
    }

    /// [`Tensor::permuted`], borrowing when the order is already right.
    pub fn permuted_cow(&self, order: &[Label]) -> std::borrow::Cow<'_, Tensor> {
        if order == self.labels.as_slice() {
            std::borrow::Cow::Borrowed(self)
        } else {
            std::borrow::Cow::Owned(self.permuted(order))
        }
    }

    /// The tensor with every label `l` renamed to `map(l)`. Where two axes
    /// get one name, the result keeps their diagonal (`T'[i] = T[i, i]`):
    /// this is what a Kronecker delta between the two indices contracts to.
    /// Labels keep their first-appearance order; borrows when nothing changes.
    ///
    /// # Panics
    /// If two merged axes have different dimensions.
    pub fn relabeled(&self, map: impl Fn(Label) -> Label) -> std::borrow::Cow<'_, Tensor> {
        use std::borrow::Cow;
        let mapped: Vec<Label> = self.labels.iter().map(|&l| map(l)).collect();
        if mapped == self.labels {
            return Cow::Borrowed(self);
        }
        let mut labels: Vec<Label> = Vec::with_capacity(mapped.len());
        let mut dims = Vec::with_capacity(mapped.len());
        // For every output axis, the sum of the source strides of the axes it merges.
        let mut stride = Vec::with_capacity(mapped.len());
        let source = strides(&self.dims);
        for (k, &l) in mapped.iter().enumerate() {
            match labels.iter().position(|&x| x == l) {
                Some(u) => {
                    assert_eq!(
                        dims[u], self.dims[k],
                        "merged axes of label {l} differ in size"
                    );
                    stride[u] += source[k];
                }
                None => {
                    labels.push(l);
                    dims.push(self.dims[k]);
                    stride.push(source[k]);
                }
            }
        }
        if labels.len() == mapped.len() {
            return Cow::Owned(Tensor {
                labels,
                dims: self.dims.clone(),
                data: self.data.clone(),
            });
        }
        let data = strided_offsets(&dims, &stride)
            .map(|offset| self.data[offset])
            .collect();
        Cow::Owned(Tensor { labels, dims, data })
    }

    /// Sums out the given labels.
    pub fn summed(&self, labels: &[Label]) -> Tensor {
        if labels.is_empty() {
            return self.clone();
        }
        let keep: Vec<Label> = self
            .labels
            .iter()
            .copied()
            .filter(|l| !labels.contains(l))
            .collect();
        let mut order = keep.clone();
        order.extend_from_slice(labels);
        let p = self.permuted(&order);
        let inner: usize = labels.iter().map(|&l| self.dim_of(l)).product();
        let data: Vec<f64> = p
            .data
            .chunks(inner.max(1))
            .map(|c| c.iter().sum())
            .collect();
        let dims = keep.iter().map(|&l| self.dim_of(l)).collect();
        Tensor {
            labels: keep,
            dims,
            data,
        }
    }
}

/// Contracts two tensors, keeping the labels in `keep` even when both carry them.
/// Result labels: batch (kept shared), then `a`'s free, then `b`'s free.
pub fn contract_pair(a: &Tensor, b: &Tensor, keep: &[Label]) -> Result<Tensor> {
    for l in &a.labels {
        if let Some(k) = b.labels.iter().position(|x| x == l) {
            if b.dims[k] != a.dim_of(*l) {
                return Err(Error::Invalid(format!(
                    "label {l} has dimension {} in one tensor and {} in the other",
                    a.dim_of(*l),
                    b.dims[k]
                )));
            }
        }
    }
    let shared: Vec<Label> = a
        .labels
        .iter()
        .copied()
        .filter(|l| b.labels.contains(l))
        .collect();
    let batch: Vec<Label> = shared
        .iter()
        .copied()
        .filter(|l| keep.contains(l))
        .collect();
    let summed: Vec<Label> = shared
        .iter()
        .copied()
        .filter(|l| !keep.contains(l))
        .collect();
    // Indices only one side has and nothing needs: sum them out first.
    let lonely = |t: &Tensor, other: &Tensor| -> Vec<Label> {
        t.labels
            .iter()
            .copied()
            .filter(|l| !other.labels.contains(l) && !keep.contains(l))
            .collect()
    };
    fn sum_out<'t>(t: &'t Tensor, extra: &[Label]) -> std::borrow::Cow<'t, Tensor> {
        if extra.is_empty() {
            std::borrow::Cow::Borrowed(t)
        } else {
            std::borrow::Cow::Owned(t.summed(extra))
        }
    }
    let (a, b) = (sum_out(a, &lonely(a, b)), sum_out(b, &lonely(b, a)));
    let (a, b) = (a.as_ref(), b.as_ref());
    let a_free: Vec<Label> = a
        .labels
        .iter()
        .copied()
        .filter(|l| !shared.contains(l))
        .collect();
    let b_free: Vec<Label> = b
        .labels
        .iter()
        .copied()
        .filter(|l| !shared.contains(l))
        .collect();
    let size = |t: &Tensor, ls: &[Label]| -> usize { ls.iter().map(|&l| t.dim_of(l)).product() };
    let (nb, m, k, n) = (
        size(a, &batch),
        size(a, &a_free),
        size(a, &summed),
        size(b, &b_free),
    );
    let pa = a.permuted_cow(&[batch.as_slice(), a_free.as_slice(), summed.as_slice()].concat());
    let pb = b.permuted_cow(&[batch.as_slice(), summed.as_slice(), b_free.as_slice()].concat());
    let mut data = vec![0.0; nb * m * n];
    for t in 0..nb {
        let at = &pa.data[t * m * k..(t + 1) * m * k];
        let bt = &pb.data[t * k * n..(t + 1) * k * n];
        let ct = &mut data[t * m * n..(t + 1) * m * n];
        if m * n * k <= SMALL_PRODUCT {
            // Tiny products (hyperedge batches): plain loops beat a GEMM call.
            for i in 0..m {
                let row = &at[i * k..(i + 1) * k];
                let out = &mut ct[i * n..(i + 1) * n];
                for (kk, &x) in row.iter().enumerate() {
                    if x != 0.0 {
                        for (o, &y) in out.iter_mut().zip(&bt[kk * n..(kk + 1) * n]) {
                            *o += x * y;
                        }
                    }
                }
            }
        } else {
            let am = MatRef::from_row_major_slice(at, m, k);
            let bm = MatRef::from_row_major_slice(bt, k, n);
            let c = product(am, bm, Par::Seq);
            for i in 0..m {
                for j in 0..n {
                    ct[i * n + j] = c[(i, j)];
                }
            }
        }
    }
    let labels: Vec<Label> = [batch.as_slice(), a_free.as_slice(), b_free.as_slice()].concat();
    let dims = labels
        .iter()
        .map(|&l| {
            if a.labels.contains(&l) {
                a.dim_of(l)
            } else {
                b.dim_of(l)
            }
        })
        .collect();
    Ok(Tensor { labels, dims, data })
}

/// A contraction order: pairs of positions in the shrinking list of tensors
/// (the result of each step is appended at the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<(usize, usize)>,
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

/// Contracts a network along a plan and returns the tensor with labels in `output` order.
pub fn contract(network: &[Tensor], output: &[Label], plan: &Plan) -> Result<Tensor> {
    let refs: Vec<&Tensor> = network.iter().collect();
    contract_refs(&refs, output, plan)
}

/// [`contract`] over borrowed tensors: inputs are never copied, only
/// intermediate results are allocated.
pub fn contract_refs(network: &[&Tensor], output: &[Label], plan: &Plan) -> Result<Tensor> {
    use std::borrow::Cow;
    if network.is_empty() {
        return Err(Error::Invalid("an empty network".into()));
    }
    let mut current: Vec<Cow<'_, Tensor>> = network.iter().map(|&t| Cow::Borrowed(t)).collect();
    for &(i, j) in &plan.steps {
        if j >= current.len() || i >= j {
            return Err(Error::Invalid(format!(
                "plan step ({i}, {j}) does not fit {} tensors",
                current.len()
            )));
        }
        let keep: Vec<Label> = current
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != i && k != j)
            .flat_map(|(_, t)| t.labels.iter().copied())
            .chain(output.iter().copied())
            .collect();
        let b = current.remove(j);
        let a = current.remove(i);
        current.push(Cow::Owned(contract_pair(&a, &b, &keep)?));
    }
    let last = current.pop().expect("one tensor left");
    let extra: Vec<Label> = last
        .labels
        .iter()
        .copied()
        .filter(|l| !output.contains(l))
        .collect();
    let last = last.summed(&extra);
    if output.iter().any(|l| !last.labels.contains(l)) {
        return Err(Error::Invalid(format!(
            "output labels {output:?} are not all in the network"
        )));
    }
    Ok(last.permuted(output))
}

/// Reference: the same contraction by summing over every index assignment.
/// Exponential in the number of labels; for tests on tiny networks.
pub fn einsum_naive(network: &[Tensor], output: &[Label]) -> Tensor {
    let mut labels: Vec<Label> = Vec::new();
    let mut dims: Vec<usize> = Vec::new();
    for t in network {
        for (l, d) in t.labels.iter().zip(&t.dims) {
            if !labels.contains(l) {
                labels.push(*l);
                dims.push(*d);
            }
        }
    }
    let out_dims: Vec<usize> = output
        .iter()
        .map(|l| dims[labels.iter().position(|x| x == l).expect("output label")])
        .collect();
    let out_strides = strides(&out_dims);
    let mut out = vec![0.0; out_dims.iter().product()];
    let total: usize = dims.iter().product();
    let mut index = vec![0usize; labels.len()];
    for _ in 0..total {
        let mut value = 1.0;
        for t in network {
            let st = strides(&t.dims);
            let off: usize = t
                .labels
                .iter()
                .zip(&st)
                .map(|(l, s)| index[labels.iter().position(|x| x == l).expect("label")] * s)
                .sum();
            value *= t.data[off];
        }
        let o: usize = output
            .iter()
            .zip(&out_strides)
            .map(|(l, s)| index[labels.iter().position(|x| x == l).expect("label")] * s)
            .sum();
        out[o] += value;
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < dims[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Tensor {
        labels: output.to_vec(),
        dims: out_dims,
        data: out,
    }
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
