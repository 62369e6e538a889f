//! One pairwise contraction: shared indices summed or kept as batch indices,
//! executed as permute + reshape + GEMM (faer), tiny products as plain loops.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::buffers::{recycle, scratch, zeroed};
use super::diagonal::add_on_diagonals;
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
        let inner = |group: &[Label]| group.last().map_or(0, |&l| stride[t.axis(l)]);
        // An outer label this operand lacks repeats its matrix (stride 0).
        let steps: Vec<usize> = outer
            .iter()
            .map(|&l| t.find_axis(l).map_or(0, |a| stride[a]))
            .collect();
        let offsets: Vec<usize> = strided_offsets(outer_dims, &steps).collect();
        let span = |group: &[Label]| -> usize {
            group
                .iter()
                .map(|&l| (t.dims[t.axis(l)] - 1) * stride[t.axis(l)])
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

    /// `nb` row-major `rows × cols` matrices one after another.
    fn row_major(nb: usize, rows: usize, cols: usize) -> Self {
        MatrixViews {
            offsets: (0..nb).map(|t| t * rows * cols).collect(),
            row_stride: cols,
            col_stride: 1,
            extent: nb * rows * cols,
        }
    }

    /// Where batch element `t`'s `rows × cols` matrix starts in a buffer of
    /// `len` entries, and its row and column strides.
    ///
    /// # Panics
    /// If a non-empty view could reach past `len`: every element
    /// `start + i·row_stride + j·col_stride` (i < rows, j < cols) lies below
    /// `extent`, so `extent ≤ len` is what keeps the views in bounds.
    fn layout(&self, len: usize, t: usize, rows: usize, cols: usize) -> (usize, isize, isize) {
        assert!(self.extent <= len || rows == 0 || cols == 0);
        let start = self.offsets[t].min(len);
        (start, self.row_stride as isize, self.col_stride as isize)
    }

    /// The `rows × cols` matrix of batch element `t`, writable. The views
    /// of different batch elements of one tensor never overlap (its labels
    /// are distinct), and each lives only as long as its borrow of `data`.
    fn matrix_mut<'a>(
        &self,
        data: &'a mut [f64],
        t: usize,
        rows: usize,
        cols: usize,
    ) -> MatMut<'a, f64> {
        let (start, rs, cs) = self.layout(data.len(), t, rows, cols);
        // SAFETY: in bounds, checked by `layout`; the view borrows `data`
        // mutably and exclusively for its lifetime.
        unsafe { MatMut::from_raw_parts_mut(data.as_mut_ptr().add(start), rows, cols, rs, cs) }
    }

    /// The `rows × cols` matrix of batch element `t`.
    fn matrix<'a>(&self, data: &'a [f64], t: usize, rows: usize, cols: usize) -> MatRef<'a, f64> {
        let (start, rs, cs) = self.layout(data.len(), t, rows, cols);
        // SAFETY: in bounds, checked by `layout`; the view borrows `data`
        // for its lifetime.
        unsafe { MatRef::from_raw_parts(data.as_ptr().add(start), rows, cols, rs, cs) }
    }
}

/// Contracts two tensors, keeping the labels in `keep` even when both carry them.
/// Result labels: batch (kept shared), then the free labels of `a` and `b`
/// that become outer loops, then the rows of `a` and the columns of `b`
/// (for operands whose free axes fuse: batch, `a`'s free, `b`'s free).
#[cfg(test)]
pub fn contract_pair(a: &Tensor, b: &Tensor, keep: &[Label]) -> Result<Tensor> {
    contract_parts(a.parts(), b.parts(), keep)
}

/// [`contract_pair`] over borrowed parts (labels possibly renamed).
pub(crate) fn contract_parts(a: Parts<'_>, b: Parts<'_>, keep: &[Label]) -> Result<Tensor> {
    let product = Product::new(a, b, keep)?;
    let data = product.to_new();
    let (labels, dims) = (product.labels.clone(), product.dims.clone());
    product.recycle();
    Ok(Tensor { labels, dims, data })
}

/// `acc += weight · (a ⊗ b)`, contracted like [`contract_parts`], where
/// `acc` carries exactly the result's labels in any order: the products are
/// written into `acc` through strides when the result's row and column
/// groups fuse there, else the result is formed and added.
pub(crate) fn contract_parts_into(
    a: Parts<'_>,
    b: Parts<'_>,
    keep: &[Label],
    acc: &mut Tensor,
    weight: f64,
) -> Result<()> {
    let product = Product::new(a, b, keep)?;
    let (mut ours, mut theirs) = (product.labels.clone(), acc.labels.clone());
    ours.sort_unstable();
    theirs.sort_unstable();
    if ours != theirs {
        return Err(Error::Invalid(format!(
            "a result with labels {:?} cannot be added to one with {:?}",
            product.labels, acc.labels
        )));
    }
    let outer_dims: Vec<usize> = product.outer.iter().map(|&l| acc.dim_of(l)).collect();
    let (outer, rows, cols) = (&product.outer, &product.rows, &product.cols);
    match MatrixViews::of(acc.parts(), outer, &outer_dims, rows, cols) {
        Some(dst) => product.execute((&mut acc.data, &dst), Accum::Add, weight),
        None => {
            let t = Tensor {
                labels: product.labels.clone(),
                dims: product.dims.clone(),
                data: product.to_new(),
            };
            add_on_diagonals(&mut acc.data, &acc.labels, &acc.dims, &t, weight);
            recycle(t.data);
        }
    }
    product.recycle();
    Ok(())
}

/// An operand as the products read it: borrowed in place, or a permuted
/// or summed copy.
enum Operand<'a> {
    Borrowed(&'a [f64]),
    Owned(Tensor),
}

impl Operand<'_> {
    fn data(&self) -> &[f64] {
        match self {
            Operand::Borrowed(d) => d,
            Operand::Owned(t) => &t.data,
        }
    }
}

/// One pairwise contraction, planned: per batch element an `m × k` by
/// `k × n` product of strided views; the result's labels are
/// `[outer, rows, cols]`.
struct Product<'a> {
    a: (Operand<'a>, MatrixViews),
    b: (Operand<'a>, MatrixViews),
    nb: usize,
    m: usize,
    k: usize,
    n: usize,
    outer: Vec<Label>,
    rows: Vec<Label>,
    cols: Vec<Label>,
    labels: Vec<Label>,
    dims: Vec<usize>,
}

impl<'a> Product<'a> {
    fn new(a: Parts<'a>, b: Parts<'a>, keep: &[Label]) -> Result<Self> {
        for l in a.labels {
            if let Some(k) = b.find_axis(*l) {
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
        let (batch, summed): (Vec<Label>, Vec<Label>) =
            shared.iter().partition(|l| keep.contains(l));
        // Indices only one side has and nothing needs: sum them out first.
        let lonely = |t: Parts<'_>, other: Parts<'_>| -> Option<Tensor> {
            let ls: Vec<Label> = t
                .labels
                .iter()
                .copied()
                .filter(|l| !other.labels.contains(l) && !keep.contains(l))
                .collect();
            (!ls.is_empty()).then(|| t.to_tensor().summed(&ls))
        };
        let (summed_a, summed_b) = (lonely(a, b), lonely(b, a));
        let (pa, pb) = (
            summed_a.as_ref().map_or(a, Tensor::parts),
            summed_b.as_ref().map_or(b, Tensor::parts),
        );
        let free = |t: Parts<'_>| -> Vec<Label> {
            t.labels
                .iter()
                .copied()
                .filter(|l| !shared.contains(l))
                .collect()
        };
        // Free labels that do not fuse with the innermost free axes of their
        // operand become outer loops (no copy); summed labels must fuse in
        // both operands in one order, else an operand is permuted.
        let (outer_a, rows) = split_fused(pa, &free(pa));
        let (outer_b, cols) = split_fused(pb, &free(pb));
        let outer: Vec<Label> = [batch.as_slice(), &outer_a, &outer_b].concat();
        let b_order: Vec<Label> = pb
            .labels
            .iter()
            .copied()
            .filter(|l| summed.contains(l))
            .collect();
        // Prefer an order both operands fuse, else one the larger operand fuses.
        let both = |o: &[Label]| fuses(pa, o) && fuses(pb, o);
        let summed = if both(&summed) {
            summed
        } else if both(&b_order) || pb.data.len() > pa.data.len() {
            b_order
        } else {
            summed
        };
        let size =
            |t: Parts<'_>, ls: &[Label]| -> usize { ls.iter().map(|&l| t.dim_of(l)).product() };
        let (m, k, n) = (size(pa, &rows), size(pa, &summed), size(pb, &cols));
        let dim = |l: &Label| {
            if pa.labels.contains(l) {
                pa.dim_of(*l)
            } else {
                pb.dim_of(*l)
            }
        };
        let outer_dims: Vec<usize> = outer.iter().map(dim).collect();
        let labels: Vec<Label> = [outer.as_slice(), &rows, &cols].concat();
        let dims: Vec<usize> = labels.iter().map(dim).collect();
        let nb = outer_dims.iter().product();
        let a_order = [batch.as_slice(), &outer_a, &rows, &summed].concat();
        let b_order = [batch.as_slice(), &summed, &outer_b, &cols].concat();
        let view = |source: Parts<'a>, owned: Option<Tensor>, order: &[Label], r, c| {
            let parts = owned.as_ref().map_or(source, Tensor::parts);
            if let Some(v) = MatrixViews::of(parts, &outer, &outer_dims, r, c) {
                let operand = match owned {
                    Some(t) => Operand::Owned(t),
                    None => Operand::Borrowed(source.data),
                };
                return (operand, v);
            }
            let p = parts.permuted(order);
            let v = MatrixViews::of(p.parts(), &outer, &outer_dims, r, c).expect("contiguous");
            if let Some(t) = owned {
                recycle(t.data);
            }
            (Operand::Owned(p), v)
        };
        Ok(Product {
            a: view(a, summed_a, &a_order, &rows, &summed),
            b: view(b, summed_b, &b_order, &summed, &cols),
            nb,
            m,
            k,
            n,
            outer,
            rows,
            cols,
            labels,
            dims,
        })
    }

    fn is_small(&self) -> bool {
        self.m * self.n * self.k <= SMALL_PRODUCT
    }

    /// The result in a new row-major buffer over `[outer, rows, cols]`.
    fn to_new(&self) -> Vec<f64> {
        let size = self.nb * self.m * self.n;
        // Tiny products add onto zeros; GEMMs overwrite every element.
        let mut data = if self.is_small() {
            zeroed(size)
        } else {
            scratch(size)
        };
        let out = MatrixViews::row_major(self.nb, self.m, self.n);
        self.execute((&mut data, &out), Accum::Replace, 1.0);
        data
    }

    /// `dst_t = alpha · A_t B_t` (or `+=` with [`Accum::Add`]) for every
    /// batch element `t`; tiny products always add (onto zeros when new).
    fn execute(&self, (dst, out): (&mut [f64], &MatrixViews), accum: Accum, alpha: f64) {
        let (a, va) = (self.a.0.data(), &self.a.1);
        let (b, vb) = (self.b.0.data(), &self.b.1);
        let (m, k, n) = (self.m, self.k, self.n);
        if self.is_small() {
            small_products((dst, out), (a, va), (b, vb), (m, k, n), alpha);
            return;
        }
        for t in 0..self.nb {
            let c = out.matrix_mut(dst, t, m, n);
            matmul(
                c,
                accum,
                va.matrix(a, t, m, k),
                vb.matrix(b, t, k, n),
                alpha,
                Par::Seq,
            );
        }
    }

    /// Returns the permuted or summed copies to the buffer pool.
    fn recycle(self) {
        for operand in [self.a.0, self.b.0] {
            if let Operand::Owned(t) = operand {
                recycle(t.data);
            }
        }
    }
}

/// `out_t += alpha · A_t B_t` for every batch element `t` of strided
/// views, for products too small for a GEMM call: the longer of the row
/// and column loops runs innermost.
fn small_products(
    (dst, out): (&mut [f64], &MatrixViews),
    (a, va): (&[f64], &MatrixViews),
    (b, vb): (&[f64], &MatrixViews),
    (m, k, n): (usize, usize, usize),
    alpha: f64,
) {
    let (ars, acs, brs, bcs) = (va.row_stride, va.col_stride, vb.row_stride, vb.col_stride);
    let (ors, ocs) = (out.row_stride, out.col_stride);
    let views = out.offsets.iter().zip(va.offsets.iter().zip(&vb.offsets));
    for (&oo, (&ao, &bo)) in views {
        if n >= m {
            for i in 0..m {
                for kk in 0..k {
                    let x = alpha * a[ao + i * ars + kk * acs];
                    let (from, to) = (bo + kk * brs, oo + i * ors);
                    for j in 0..n {
                        dst[to + j * ocs] += x * b[from + j * bcs];
                    }
                }
            }
        } else {
            for j in 0..n {
                for kk in 0..k {
                    let y = alpha * b[bo + kk * brs + j * bcs];
                    let (from, to) = (ao + kk * acs, oo + j * ocs);
                    for i in 0..m {
                        dst[to + i * ors] += a[from + i * ars] * y;
                    }
                }
            }
        }
    }
}

/// Whether `group` (in this order) fuses into one strided axis of `t`.
fn fuses(t: Parts<'_>, group: &[Label]) -> bool {
    let stride = strides(t.dims);
    group.windows(2).all(|w| {
        let (x, y) = (t.axis(w[0]), t.axis(w[1]));
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
