//! The sum over a term pair's networks, factored by shared last tensors
//! (module docs of [`super`], "Factored sums").
//!
//! Networks that contract the same tensor `T` last, meeting it with the
//! same labels, are summed before they meet it:
//!
//! ```text
//! Σ_n contract(X_n, T) = contract(Σ_n X_n, T)
//! ```
//!
//! and the inner sums are factored again, [`FACTOR_DEPTH`] levels deep. For
//! each network the tensor left out is the one whose absence makes the rest
//! cheapest to contract (by a greedy plan); networks group when they leave
//! out the same slot, under the same position merge, with the same inner
//! labels. On the paper's 1-layer attention this cuts the networks'
//! arithmetic by about 40%.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::contraction::{greedy_plan, Cost, Label, Plan};

use super::topology::{Network, Slot};

/// Levels of factoring below a term pair's sum.
pub(super) const FACTOR_DEPTH: usize = 2;

/// One summand of a term pair's moment.
#[derive(Debug)]
pub(super) enum SumNode {
    /// One network, weighted by its crossing's mirror weight.
    Leaf { crossing: usize, network: Network },
    /// `contract(Σ children, T)`.
    Factored(Factored),
}

/// Children summed (over labels they share), then contracted with the slot
/// `last` (its labels renamed by `renames`) into `output`.
#[derive(Debug)]
pub(super) struct Factored {
    pub last: Slot,
    pub renames: Vec<(Label, Label)>,
    /// Distinct output labels, and with repeats (the term pair's output
    /// pattern).
    pub output: Vec<Label>,
    pub full_output: Vec<Label>,
    pub children: Vec<SumNode>,
    /// The cost of the last contraction.
    pub last_cost: Cost,
}

/// The plan of a factored node's last contraction (inner sum, then `T`).
pub(super) const LAST_STEP: (usize, usize) = (0, 1);

impl SumNode {
    /// Output labels with repeats: the key of compact accumulation.
    pub fn full_output(&self) -> &[Label] {
        match self {
            SumNode::Leaf { network, .. } => &network.full_output,
            SumNode::Factored(f) => &f.full_output,
        }
    }

    /// Every leaf network below this node.
    pub fn leaves(&self) -> Box<dyn Iterator<Item = (usize, &Network)> + '_> {
        match self {
            SumNode::Leaf { crossing, network } => Box::new(std::iter::once((*crossing, network))),
            SumNode::Factored(f) => Box::new(f.children.iter().flat_map(SumNode::leaves)),
        }
    }

    /// Flops and largest intermediate of evaluating this node, counting
    /// only leaves whose crossing has a non-zero `weight` (and the last
    /// contractions of nodes with any such leaf).
    pub fn cost(&self, weight: &dyn Fn(usize) -> f64) -> Option<(Cost, usize)> {
        match self {
            SumNode::Leaf { crossing, network } => {
                (weight(*crossing) != 0.0).then(|| (network.cost(), 1))
            }
            SumNode::Factored(f) => {
                let mut total: Option<(Cost, usize)> = None;
                for c in &f.children {
                    if let Some((k, n)) = c.cost(weight) {
                        let t = total.get_or_insert((f.last_cost, 0));
                        t.0.flops += k.flops;
                        t.0.largest = t.0.largest.max(k.largest);
                        t.1 += n;
                    }
                }
                total
            }
        }
    }
}

/// Groups `networks` (with their crossings) into factored sums, `depth`
/// levels deep; `dim` gives every label's dimension.
pub(super) fn factor(
    networks: Vec<(usize, Network)>,
    depth: usize,
    dim: &dyn Fn(Label) -> usize,
) -> Vec<SumNode> {
    /// The left-out slot, the rename, the inner labels and the output.
    type Key = (Slot, Vec<(Label, Label)>, Vec<Label>, Vec<Label>);
    /// A network with its crossing and the slot it leaves out.
    type Member = (usize, Network, usize);
    let mut nodes: Vec<SumNode> = Vec::new();
    let mut groups: Vec<(Key, Vec<Member>)> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    let choices: Vec<Option<(usize, Vec<Label>)>> = if depth > 0 {
        networks.par_iter().map(|(_, n)| best_last(n)).collect()
    } else {
        vec![None; networks.len()]
    };
    for ((crossing, network), choice) in networks.into_iter().zip(choices) {
        let Some((left_out, inner)) = choice else {
            nodes.push(SumNode::Leaf { crossing, network });
            continue;
        };
        let key = (
            network.slots[left_out],
            network.renames.clone(),
            inner,
            network.full_output.clone(),
        );
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push((crossing, network, left_out));
    }
    for ((last, renames, inner, full_output), members) in groups {
        if members.len() == 1 {
            let (crossing, network, _) = members.into_iter().next().expect("one member");
            nodes.push(SumNode::Leaf { crossing, network });
            continue;
        }
        let (_, first, left_out) = &members[0];
        let output = first.output.clone();
        let inner_dims: Vec<usize> = inner.iter().map(|&l| dim(l)).collect();
        let shapes = [
            (inner.clone(), inner_dims.clone()),
            first.shapes[*left_out].clone(),
        ];
        let last_cost = Plan {
            steps: vec![LAST_STEP],
        }
        .cost(&shapes, &output);
        let children: Vec<(usize, Network)> = members
            .into_iter()
            .map(|(crossing, network, left_out)| (crossing, network.without(left_out, &inner)))
            .collect();
        nodes.push(SumNode::Factored(Factored {
            last,
            renames,
            output,
            full_output,
            children: factor(children, depth - 1, dim),
            last_cost,
        }));
    }
    nodes
}

/// The slot to contract last (the one whose absence makes the rest
/// cheapest by a greedy plan) and the labels the rest must keep for it:
/// every label of the rest that the output or that slot carries, sorted.
/// `None` for networks of fewer than three tensors.
fn best_last(network: &Network) -> Option<(usize, Vec<Label>)> {
    if network.shapes.len() < 3 {
        return None;
    }
    let mut best: Option<(f64, usize, Vec<Label>)> = None;
    for s in 0..network.shapes.len() {
        let rest: Vec<(Vec<Label>, Vec<usize>)> = network
            .shapes
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != s)
            .map(|(_, t)| t.clone())
            .collect();
        let last = &network.shapes[s].0;
        let mut inner: Vec<Label> = rest
            .iter()
            .flat_map(|t| t.0.iter().copied())
            .filter(|l| network.output.contains(l) || last.contains(l))
            .collect();
        inner.sort_unstable();
        inner.dedup();
        let flops = greedy_plan(&rest, &inner).cost(&rest, &inner).flops;
        if best.as_ref().is_none_or(|b| flops < b.0) {
            best = Some((flops, s, inner));
        }
    }
    best.map(|(_, s, inner)| (s, inner))
}
