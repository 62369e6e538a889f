//! A dense f64 tensor with one label per axis, and the index walks that
//! permute it, take its diagonals and sum its axes.

use super::buffers::scratch;
use super::Label;
use crate::error::{Error, Result};

/// A dense f64 tensor, row-major, one label per axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// One label per axis; a label shared with another tensor is contracted.
    pub labels: Vec<Label>,
    /// The length of each axis, in the order of `labels`.
    pub dims: Vec<usize>,
    /// The entries, row-major (last axis fastest); length the product of `dims`.
    pub data: Vec<f64>,
}

pub(crate) fn strides(dims: &[usize]) -> Vec<usize> {
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

    pub(crate) fn dim_of(&self, label: Label) -> usize {
        self.parts().dim_of(label)
    }

    /// The labels not in `set`, in axis order.
    pub(crate) fn labels_except(&self, set: &[Label]) -> Vec<Label> {
        self.labels
            .iter()
            .copied()
            .filter(|l| !set.contains(l))
            .collect()
    }

    /// The same values with axes in the order of `order` (a permutation of the labels).
    pub fn permuted(&self, order: &[Label]) -> Tensor {
        self.parts().permuted(order)
    }

    /// The tensor's labels, dimensions and values, borrowed.
    pub(crate) fn parts(&self) -> Parts<'_> {
        Parts {
            labels: &self.labels,
            dims: &self.dims,
            data: &self.data,
        }
    }

    /// [`Tensor::permuted`], borrowing when the order is already right.
    #[cfg(any(test, feature = "reference"))]
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
        let mut data = vec![0.0; dims.iter().product()];
        gather(&self.data, &dims, &stride, &mut data);
        Cow::Owned(Tensor { labels, dims, data })
    }

    /// Sums out the given labels.
    pub fn summed(&self, labels: &[Label]) -> Tensor {
        if labels.is_empty() {
            return self.clone();
        }
        let keep = self.labels_except(labels);
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

/// A tensor's values under a label list that may differ from its own (the
/// same axes renamed): what a contraction reads without copying.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parts<'a> {
    pub labels: &'a [Label],
    pub dims: &'a [usize],
    pub data: &'a [f64],
}

impl Parts<'_> {
    /// The axis labelled `label`, if there is one.
    pub fn find_axis(&self, label: Label) -> Option<usize> {
        self.labels.iter().position(|&l| l == label)
    }

    /// The axis labelled `label`.
    ///
    /// # Panics
    /// If no axis has that label.
    pub fn axis(&self, label: Label) -> usize {
        self.find_axis(label).expect("label present")
    }

    pub fn dim_of(&self, label: Label) -> usize {
        self.dims[self.axis(label)]
    }

    pub fn to_tensor(self) -> Tensor {
        Tensor {
            labels: self.labels.to_vec(),
            dims: self.dims.to_vec(),
            data: self.data.to_vec(),
        }
    }

    /// The same values with axes in the order of `order` (a permutation of the labels).
    pub fn permuted(&self, order: &[Label]) -> Tensor {
        let axes: Vec<usize> = order.iter().map(|&l| self.axis(l)).collect();
        let dims: Vec<usize> = axes.iter().map(|&a| self.dims[a]).collect();
        let src = strides(self.dims);
        let moved: Vec<usize> = axes.iter().map(|&a| src[a]).collect();
        let mut data = scratch(self.data.len());
        gather(self.data, &dims, &moved, &mut data);
        Tensor {
            labels: order.to_vec(),
            dims,
            data,
        }
    }
}

/// Side of the square tiles of [`for_each_run`].
const TILE: usize = 16;

/// Writes `out[i] = src[offset(i)]` for every row-major index `i` of `dims`,
/// where `offset(i) = Σ_k i_k·stride[k]`.
fn gather(src: &[f64], dims: &[usize], stride: &[usize], out: &mut [f64]) {
    for_each_run(dims, stride, &strides(dims), |s, o, len, step, _| {
        if step == 1 {
            out[o..o + len].copy_from_slice(&src[s..s + len]);
        } else {
            for (r, x) in out[o..o + len].iter_mut().enumerate() {
                *x = src[s + r * step];
            }
        }
    });
}

/// Walks every index of `dims` as two offsets, `Σ_k i_k·a[k]` and
/// `Σ_k i_k·b[k]`, in runs along the last axis: `f(a_offset, b_offset,
/// len, a_step, b_step)` stands for `len` elements, the `r`-th at
/// `a_offset + r·a_step` and `b_offset + r·b_step`. When one side is
/// contiguous along the last axis and the other along another axis, the
/// two axes are walked in square tiles, so that both sides stay within a
/// few cache lines (a transposition).
pub(crate) fn for_each_run(
    dims: &[usize],
    a: &[usize],
    b: &[usize],
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let Some(last) = dims.len().checked_sub(1) else {
        f(0, 0, 1, 0, 0);
        return;
    };
    if dims.contains(&0) {
        return;
    }
    let (run, sa, sb) = (dims[last], a[last], b[last]);
    let unit = |s: &[usize]| (0..last).find(|&k| s[k] == 1 && dims[k] > 1);
    let across = match (sa == 1, sb == 1) {
        (false, true) => unit(a),
        (true, false) => unit(b),
        _ => None,
    };
    match across {
        Some(c) => {
            let mut others = dims.to_vec();
            others[c] = 1;
            others[last] = 1;
            let walk = strided_offsets(&others, a).zip(strided_offsets(&others, b));
            for (base_a, base_b) in walk {
                for i0 in (0..dims[c]).step_by(TILE) {
                    for j0 in (0..run).step_by(TILE) {
                        let len = TILE.min(run - j0);
                        for i in i0..(i0 + TILE).min(dims[c]) {
                            let (oa, ob) =
                                (base_a + i * a[c] + j0 * sa, base_b + i * b[c] + j0 * sb);
                            f(oa, ob, len, sa, sb);
                        }
                    }
                }
            }
        }
        None => {
            let walk = strided_offsets(&dims[..last], &a[..last])
                .zip(strided_offsets(&dims[..last], &b[..last]));
            for (oa, ob) in walk {
                f(oa, ob, run, sa, sb);
            }
        }
    }
}
