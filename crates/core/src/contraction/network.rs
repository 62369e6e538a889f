//! Whole networks along a plan, and the naive einsum every plan is tested against.

use super::buffers::recycle;
use super::diagonal::add_on_diagonals;
use super::pair::{contract_parts, contract_parts_into};
use super::plan::Plan;
#[cfg(test)]
use super::tensor::strides;
use super::tensor::{Parts, Tensor};
use super::Label;
use crate::error::{Error, Result};

/// Contracts a network along a plan and returns the tensor with labels in `output` order.
#[cfg(test)]
pub fn contract(network: &[Tensor], output: &[Label], plan: &Plan) -> Result<Tensor> {
    let refs: Vec<&Tensor> = network.iter().collect();
    contract_refs(&refs, output, plan)
}

/// [`contract`] over borrowed tensors: inputs are never copied, only
/// intermediate results are allocated.
#[cfg(any(test, feature = "reference"))]
pub fn contract_refs(network: &[&Tensor], output: &[Label], plan: &Plan) -> Result<Tensor> {
    contract_renamed(network, |l| l, output, plan)
}

/// [`contract_refs`] with every input label `l` renamed to `rename(l)`: an
/// input whose renamed labels stay distinct is read in place under its new
/// names; one whose axes merge takes its diagonal first
/// ([`Tensor::relabeled`]).
#[cfg(any(test, feature = "reference"))]
pub fn contract_renamed(
    network: &[&Tensor],
    rename: impl Fn(Label) -> Label + Copy,
    output: &[Label],
    plan: &Plan,
) -> Result<Tensor> {
    let last = contract_renamed_unordered(network, rename, output, plan)?;
    Ok(match last.permuted_cow(output) {
        std::borrow::Cow::Borrowed(_) => last,
        std::borrow::Cow::Owned(t) => t,
    })
}

/// [`contract_renamed`] with the result's axes in the order the last step
/// leaves them (a permutation of `output`): for callers that add the result
/// onto a larger tensor by strides anyway, this saves a copy.
pub fn contract_renamed_unordered(
    network: &[&Tensor],
    rename: impl Fn(Label) -> Label + Copy,
    output: &[Label],
    plan: &Plan,
) -> Result<Tensor> {
    let mut current = operands(network, rename)?;
    run_steps(&mut current, &plan.steps, output)?;
    let last = current.pop().expect("one tensor left");
    let last = match last {
        Operand::Owned(t) => t,
        Operand::Renamed(..) => last.parts().to_tensor(),
    };
    finish(last, output)
}

/// `acc += weight · N`, where `N` is the network [`contract_renamed`]
/// contracts and `acc` carries the labels of `output` in any order: the
/// last step's products are written into `acc` directly where its strides
/// allow, so the result is never formed on its own.
pub fn contract_renamed_into(
    network: &[&Tensor],
    rename: impl Fn(Label) -> Label + Copy,
    output: &[Label],
    plan: &Plan,
    acc: &mut Tensor,
    weight: f64,
) -> Result<()> {
    let Some((&(i, j), steps)) = plan.steps.split_last() else {
        let t = contract_renamed_unordered(network, rename, output, plan)?;
        add_on_diagonals(&mut acc.data, &acc.labels, &acc.dims, &t, weight);
        return Ok(());
    };
    let mut current = operands(network, rename)?;
    run_steps(&mut current, steps, output)?;
    if current.len() != 2 || (i, j) != (0, 1) {
        return Err(Error::Invalid(format!(
            "the last plan step ({i}, {j}) does not fit {} tensors",
            current.len()
        )));
    }
    let (a, b) = (&current[0], &current[1]);
    contract_parts_into(a.parts(), b.parts(), output, acc, weight)?;
    for operand in current {
        if let Operand::Owned(t) = operand {
            recycle(t.data);
        }
    }
    Ok(())
}

/// An input read in place under its renamed labels, or an intermediate.
enum Operand<'a> {
    Renamed(Vec<Label>, &'a Tensor),
    Owned(Tensor),
}

impl Operand<'_> {
    fn parts(&self) -> Parts<'_> {
        match self {
            Operand::Renamed(labels, t) => Parts {
                labels,
                dims: &t.dims,
                data: &t.data,
            },
            Operand::Owned(t) => t.parts(),
        }
    }
}

/// The inputs under their renamed labels: read in place where the labels
/// stay distinct, their diagonals taken where axes merge.
fn operands<'a>(
    network: &[&'a Tensor],
    rename: impl Fn(Label) -> Label + Copy,
) -> Result<Vec<Operand<'a>>> {
    if network.is_empty() {
        return Err(Error::Invalid("an empty network".into()));
    }
    Ok(network
        .iter()
        .map(|&t| {
            let labels: Vec<Label> = t.labels.iter().map(|&l| rename(l)).collect();
            let mut distinct = labels.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() == labels.len() {
                Operand::Renamed(labels, t)
            } else {
                Operand::Owned(t.relabeled(rename).into_owned())
            }
        })
        .collect())
}

/// Performs `steps` on `current`: each pair is replaced by its contraction
/// (appended last), keeping the labels still needed by other tensors or
/// the output; consumed intermediates go back to the buffer pool.
fn run_steps(
    current: &mut Vec<Operand<'_>>,
    steps: &[(usize, usize)],
    output: &[Label],
) -> Result<()> {
    for &(i, j) in steps {
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
            .flat_map(|(_, t)| t.parts().labels.to_vec())
            .chain(output.iter().copied())
            .collect();
        let b = current.remove(j);
        let a = current.remove(i);
        let result = contract_parts(a.parts(), b.parts(), &keep)?;
        for operand in [a, b] {
            if let Operand::Owned(t) = operand {
                recycle(t.data);
            }
        }
        current.push(Operand::Owned(result));
    }
    Ok(())
}

/// Sums out the labels `output` drops; the rest keep their order.
fn finish(last: Tensor, output: &[Label]) -> Result<Tensor> {
    let extra = last.labels_except(output);
    let last = if extra.is_empty() {
        last
    } else {
        last.summed(&extra)
    };
    if output.iter().any(|l| !last.labels.contains(l)) {
        return Err(Error::Invalid(format!(
            "output labels {output:?} are not all in the network"
        )));
    }
    Ok(last)
}

/// Reference: the same contraction by summing over every index assignment.
/// Exponential in the number of labels; for tests on tiny networks.
#[cfg(test)]
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
