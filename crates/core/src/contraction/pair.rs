//! One pairwise contraction: shared indices summed or kept as batch indices,
//! executed as permute + reshape + GEMM (faer), tiny products as plain loops.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::tensor::{strided_offsets, strides, Parts, Tensor};
use super::Label;
use crate::error::{Error, Result};

/// Products with at most this many multiply-adds run as plain loops.
const SMALL_PRODUCT: usize = 1 << 9;

/// A tensor read as one strided matrix per batch element: the offset of
/// each batch element, and the strides of the row and column groups.
struct MatrixViews {
    offsets: Vec<usize>,
    row_stride: usize,
    col_stride: usize,
    /// The largest offset any element of any view reaches, plus one.
    extent: usize,
}

impl MatrixViews {
    /// `None` unless the row labels (in the order given) fuse into one
    /// strided axis, and so do the column labels.
    fn of(t: Parts<'_>, batch: &[Label], rows: &[Label], cols: &[Label]) -> Option<Self> {
        let stride = strides(t.dims);
        let axis = |l: &Label| t.labels.iter().position(|x| x == l).expect("label present");
        let fused = |group: &[Label]| -> Option<usize> {
            let axes: Vec<usize> = group.iter().map(axis).collect();
            for w in axes.windows(2) {
                if stride[w[0]] != stride[w[1]] * t.dims[w[1]] {
                    return None;
                }
            }
            Some(axes.last().map_or(0, |&a| stride[a]))
        };
        let (row_stride, col_stride) = (fused(rows)?, fused(cols)?);
        let batch_axes: Vec<usize> = batch.iter().map(axis).collect();
        let dims: Vec<usize> = batch_axes.iter().map(|&a| t.dims[a]).collect();
        let steps: Vec<usize> = batch_axes.iter().map(|&a| stride[a]).collect();
        let offsets: Vec<usize> = strided_offsets(&dims, &steps).collect();
        let span = |group: &[Label]| -> usize {
            group
                .iter()
                .map(|l| (t.dims[axis(l)] - 1) * stride[axis(l)])
                .sum()
        };
        let last = offsets.iter().max().copied().unwrap_or(0);
        Some(MatrixViews {
            extent: last + span(rows) + span(cols) + 1,
            offsets,
            row_stride,
            col_stride,
        })
    }

    /// The `rows × cols` matrix of batch element `t`.
    fn matrix<'a>(&self, data: &'a [f64], t: usize, rows: usize, cols: usize) -> MatRef<'a, f64> {
        assert!(self.extent <= data.len() || rows == 0 || cols == 0);
        let offset = self.offsets[t];
        // SAFETY: every element `offset + i·row_stride + j·col_stride`
        // (i < rows, j < cols) lies below `extent ≤ data.len()`, checked above,
        // and the view borrows `data` for its lifetime.
        unsafe {
            MatRef::from_raw_parts(
                data.as_ptr().add(offset.min(data.len())),
                rows,
                cols,
                self.row_stride as isize,
                self.col_stride as isize,
            )
        }
    }
}

/// Contracts two tensors, keeping the labels in `keep` even when both carry them.
/// Result labels: batch (kept shared), then `a`'s free, then `b`'s free.
pub fn contract_pair(a: &Tensor, b: &Tensor, keep: &[Label]) -> Result<Tensor> {
    contract_parts(a.parts(), b.parts(), keep)
}

/// [`contract_pair`] over borrowed parts (labels possibly renamed).
pub(crate) fn contract_parts(a: Parts<'_>, b: Parts<'_>, keep: &[Label]) -> Result<Tensor> {
    for l in a.labels {
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
    let lonely = |t: Parts<'_>, other: Parts<'_>| -> Vec<Label> {
        t.labels
            .iter()
            .copied()
            .filter(|l| !other.labels.contains(l) && !keep.contains(l))
            .collect()
    };
    let (lonely_a, lonely_b) = (lonely(a, b), lonely(b, a));
    let (summed_a, summed_b);
    let a = if lonely_a.is_empty() {
        a
    } else {
        summed_a = a.to_tensor().summed(&lonely_a);
        summed_a.parts()
    };
    let b = if lonely_b.is_empty() {
        b
    } else {
        summed_b = b.to_tensor().summed(&lonely_b);
        summed_b.parts()
    };
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
    let size = |t: Parts<'_>, ls: &[Label]| -> usize { ls.iter().map(|&l| t.dim_of(l)).product() };
    let (nb, m, k, n) = (
        size(a, &batch),
        size(a, &a_free),
        size(a, &summed),
        size(b, &b_free),
    );
    // Read each operand in place where its axes group into a strided matrix
    // per batch element; permute a copy only where they do not.
    let (permuted_a, permuted_b);
    let pa = match MatrixViews::of(a, &batch, &a_free, &summed) {
        Some(v) => (a.data, v),
        None => {
            permuted_a =
                a.permuted(&[batch.as_slice(), a_free.as_slice(), summed.as_slice()].concat());
            let v =
                MatrixViews::of(permuted_a.parts(), &batch, &a_free, &summed).expect("contiguous");
            (permuted_a.data.as_slice(), v)
        }
    };
    let pb = match MatrixViews::of(b, &batch, &summed, &b_free) {
        Some(v) => (b.data, v),
        None => {
            permuted_b =
                b.permuted(&[batch.as_slice(), summed.as_slice(), b_free.as_slice()].concat());
            let v =
                MatrixViews::of(permuted_b.parts(), &batch, &summed, &b_free).expect("contiguous");
            (permuted_b.data.as_slice(), v)
        }
    };
    let mut data = vec![0.0; nb * m * n];
    for (t, ct) in data.chunks_mut((m * n).max(1)).enumerate().take(nb) {
        let am = pa.1.matrix(pa.0, t, m, k);
        let bm = pb.1.matrix(pb.0, t, k, n);
        if m * n * k <= SMALL_PRODUCT {
            // Tiny products: plain loops beat a GEMM call.
            for i in 0..m {
                let out = &mut ct[i * n..(i + 1) * n];
                for kk in 0..k {
                    let x = am[(i, kk)];
                    if x != 0.0 {
                        for (j, o) in out.iter_mut().enumerate() {
                            *o += x * bm[(kk, j)];
                        }
                    }
                }
            }
        } else {
            let c = MatMut::from_row_major_slice_mut(ct, m, n);
            matmul(c, Accum::Replace, am, bm, 1.0, Par::Seq);
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
