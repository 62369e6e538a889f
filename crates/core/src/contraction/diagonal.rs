//! Index utilities for networks whose labels repeat: building a tensor over
//! the distinct labels of a repeated list (a repeated label takes the
//! diagonal) and adding a tensor back onto the diagonals of a larger one.

use super::tensor::{for_each_run, strides, Tensor};
use super::Label;

/// Builds a tensor over the distinct labels of `labels` (dimensions `dims`,
/// repeats allowed: a repeated label takes the diagonal) from `value(index)`,
/// where `index` gives one entry per element of `labels`.
pub fn tensor_with_diagonals(
    labels: &[Label],
    dims: &[usize],
    value: impl Fn(&[usize]) -> f64,
) -> Tensor {
    let mut unique: Vec<Label> = Vec::new();
    let mut udims = Vec::new();
    for (l, &d) in labels.iter().zip(dims) {
        if !unique.contains(l) {
            unique.push(*l);
            udims.push(d);
        }
    }
    let where_: Vec<usize> = labels
        .iter()
        .map(|l| unique.iter().position(|u| u == l).expect("present"))
        .collect();
    let total: usize = udims.iter().product();
    let mut data = Vec::with_capacity(total);
    let mut index = vec![0usize; unique.len()];
    let mut full = vec![0usize; labels.len()];
    for _ in 0..total {
        for (k, &w) in where_.iter().enumerate() {
            full[k] = index[w];
        }
        data.push(value(&full));
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < udims[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Tensor::new(unique, udims, data).expect("consistent tensor")
}

/// Row-major flat offset of `index` within `dims`.
pub fn flat(index: &[usize], dims: &[usize]) -> usize {
    index.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Removes repeated labels, keeping first appearances in order.
pub fn dedup_in_order(labels: &mut Vec<Label>) {
    let mut seen = Vec::with_capacity(labels.len());
    labels.retain(|l| {
        let new = !seen.contains(l);
        seen.push(*l);
        new
    });
}

/// Adds `weight · t` onto `raw` (row-major over `labels` with `dims`, labels
/// possibly repeated): `t` carries each distinct label once and its values
/// land where the repeated labels' indices agree.
pub fn add_on_diagonals(
    raw: &mut [f64],
    labels: &[Label],
    dims: &[usize],
    t: &Tensor,
    weight: f64,
) {
    if t.labels.as_slice() == labels {
        for (r, v) in raw.iter_mut().zip(&t.data) {
            *r += weight * v;
        }
        return;
    }
    // Stride in `raw` of each axis of `t`: the sum over the axes it stands for.
    let raw_stride = strides(dims);
    let stride: Vec<usize> = t
        .labels
        .iter()
        .map(|l| {
            labels
                .iter()
                .zip(&raw_stride)
                .filter(|(x, _)| *x == l)
                .map(|(_, s)| s)
                .sum()
        })
        .collect();
    let contiguous = strides(&t.dims);
    for_each_run(&t.dims, &contiguous, &stride, |s, o, len, _, step| {
        let values = &t.data[s..s + len];
        if step == 1 {
            for (r, v) in raw[o..o + len].iter_mut().zip(values) {
                *r += weight * v;
            }
        } else {
            for (k, v) in values.iter().enumerate() {
                raw[o + k * step] += weight * v;
            }
        }
    });
}
