//! One pairwise contraction: shared indices summed or kept as batch indices,
//! executed as permute + reshape + GEMM (faer), tiny products as plain loops.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::buffers::{recycle, scratch, zeroed};
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
    fn of(
        t: Parts<'_>,
        outer: &[Label],
        outer_dims: &[usize],
        rows: &[Label],
        cols: &[Label],
    ) -> Option<Self> {
        if !fuses(t, rows) || !fuses(t, cols) {
            return None;
        }
        let stride = strides(t.dims);
        let axis = |l: &Label| t.labels.iter().position(|x| x == l).expect("label present");
        let inner = |group: &[Label]| group.last().map_or(0, |l| stride[axis(l)]);
        // An outer label this operand lacks repeats its matrix (stride 0).
        let steps: Vec<usize> = outer
            .iter()
            .map(|l| {
                t.labels
                    .iter()
                    .position(|x| x == l)
                    .map_or(0, |a| stride[a])
            })
            .collect();
        let offsets: Vec<usize> = strided_offsets(outer_dims, &steps).collect();
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
            row_stride: inner(rows),
            col_stride: inner(cols),
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
/// Result labels: batch (kept shared), then the free labels of `a` and `b`
/// that become outer loops, then the rows of `a` and the columns of `b`
/// (for operands whose free axes fuse: batch, `a`'s free, `b`'s free).
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
    let (mut summed_a, mut summed_b) = (None, None);
    let a = if lonely_a.is_empty() {
        a
    } else {
        summed_a.insert(a.to_tensor().summed(&lonely_a)).parts()
    };
    let b = if lonely_b.is_empty() {
        b
    } else {
        summed_b.insert(b.to_tensor().summed(&lonely_b)).parts()
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
    // Free labels that do not fuse with the innermost free axes of their
    // operand become outer loops (no copy); summed labels must fuse in both
    // operands in one order, else an operand is permuted.
    let (outer_a, rows) = split_fused(a, &a_free);
    let (outer_b, cols) = split_fused(b, &b_free);
    let outer: Vec<Label> = [batch.as_slice(), &outer_a, &outer_b].concat();
    let b_order: Vec<Label> = b
        .labels
        .iter()
        .copied()
        .filter(|l| summed.contains(l))
        .collect();
    // Prefer an order both operands fuse, else one the larger operand fuses.
    let both = |o: &[Label]| fuses(a, o) && fuses(b, o);
    let summed = if both(&summed) {
        summed
    } else if both(&b_order) || b.data.len() > a.data.len() {
        b_order
    } else {
        summed
    };
    let size = |t: Parts<'_>, ls: &[Label]| -> usize { ls.iter().map(|&l| t.dim_of(l)).product() };
    let (m, k, n) = (size(a, &rows), size(a, &summed), size(b, &cols));
    let dim = |l: &Label| {
        if a.labels.contains(l) {
            a.dim_of(*l)
        } else {
            b.dim_of(*l)
        }
    };
    let outer_dims: Vec<usize> = outer.iter().map(dim).collect();
    let nb: usize = outer_dims.iter().product();
    let (mut permuted_a, mut permuted_b) = (None, None);
    let pa = match MatrixViews::of(a, &outer, &outer_dims, &rows, &summed) {
        Some(v) => (a.data, v),
        None => {
            let p = permuted_a
                .insert(a.permuted(&[batch.as_slice(), &outer_a, &rows, &summed].concat()));
            let v = MatrixViews::of(p.parts(), &outer, &outer_dims, &rows, &summed)
                .expect("contiguous");
            (p.data.as_slice(), v)
        }
    };
    let pb = match MatrixViews::of(b, &outer, &outer_dims, &summed, &cols) {
        Some(v) => (b.data, v),
        None => {
            let p = permuted_b
                .insert(b.permuted(&[batch.as_slice(), &summed, &outer_b, &cols].concat()));
            let v = MatrixViews::of(p.parts(), &outer, &outer_dims, &summed, &cols)
                .expect("contiguous");
            (p.data.as_slice(), v)
        }
    };
    let mut data;
    if m * n * k <= SMALL_PRODUCT {
        data = zeroed(nb * m * n);
        small_products(&mut data, (pa.0, &pa.1), (pb.0, &pb.1), (m, k, n));
    } else {
        data = scratch(nb * m * n);
        for (t, ct) in data.chunks_mut((m * n).max(1)).enumerate().take(nb) {
            let am = pa.1.matrix(pa.0, t, m, k);
            let bm = pb.1.matrix(pb.0, t, k, n);
            let c = MatMut::from_row_major_slice_mut(ct, m, n);
            matmul(c, Accum::Replace, am, bm, 1.0, Par::Seq);
        }
    }
    let labels: Vec<Label> = [outer.as_slice(), &rows, &cols].concat();
    let dims = labels.iter().map(dim).collect();
    for t in [permuted_a, permuted_b, summed_a, summed_b]
        .into_iter()
        .flatten()
    {
        recycle(t.data);
    }
    Ok(Tensor { labels, dims, data })
}

/// `out[t] += A_t · B_t` for every batch element `t` of two operands read
/// as strided matrices, for products too small for a GEMM call: the longer
/// of the row and column loops runs innermost.
fn small_products(
    out: &mut [f64],
    (a, va): (&[f64], &MatrixViews),
    (b, vb): (&[f64], &MatrixViews),
    (m, k, n): (usize, usize, usize),
) {
    if m * n == 0 {
        return;
    }
    let (ars, acs, brs, bcs) = (va.row_stride, va.col_stride, vb.row_stride, vb.col_stride);
    for (c, (&ao, &bo)) in out
        .chunks_exact_mut(m * n)
        .zip(va.offsets.iter().zip(&vb.offsets))
    {
        if n >= m {
            for i in 0..m {
                let row = &mut c[i * n..(i + 1) * n];
                for kk in 0..k {
                    let x = a[ao + i * ars + kk * acs];
                    let from = bo + kk * brs;
                    for (j, o) in row.iter_mut().enumerate() {
                        *o += x * b[from + j * bcs];
                    }
                }
            }
        } else {
            for j in 0..n {
                for kk in 0..k {
                    let y = b[bo + kk * brs + j * bcs];
                    let from = ao + kk * acs;
                    for i in 0..m {
                        c[i * n + j] += a[from + i * ars] * y;
                    }
                }
            }
        }
    }
}

/// Whether `group` (in this order) fuses into one strided axis of `t`.
fn fuses(t: Parts<'_>, group: &[Label]) -> bool {
    let stride = strides(t.dims);
    let axis = |l: &Label| t.labels.iter().position(|x| x == l).expect("label present");
    group.windows(2).all(|w| {
        let (x, y) = (axis(&w[0]), axis(&w[1]));
        stride[x] == stride[y] * t.dims[y]
    })
}

/// `free` (in `t`'s axis order) split into the labels that do not fuse and
/// the longest innermost run that does.
fn split_fused(t: Parts<'_>, free: &[Label]) -> (Vec<Label>, Vec<Label>) {
    let mut start = free.len().saturating_sub(1);
    while start > 0 && fuses(t, &free[start - 1..]) {
        start -= 1;
    }
    if free.is_empty() {
        return (Vec::new(), Vec::new());
    }
    (free[..start].to_vec(), free[start..].to_vec())
}
