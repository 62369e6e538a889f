//! One pairwise contraction: shared indices summed or kept as batch indices,
//! executed as permute + reshape + GEMM (faer), tiny products as plain loops.

use faer::MatRef;

use super::tensor::Tensor;
use super::Label;
use crate::error::{Error, Result};
use crate::gemm::product;
use faer::Par;

/// Products with at most this many multiply-adds run as plain loops.
const SMALL_PRODUCT: usize = 1 << 15;

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
