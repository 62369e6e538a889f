//! The factorised moment of one component (module docs of [`super`]): each
//! model's within-model numbers (bridges, means, dense reductions) once per
//! model, then per pair the cross bridges and one contraction per network of
//! [`TermPair`], summed in fixed chunks and mapped by the output maps.

use std::borrow::Cow;
use std::collections::HashMap;

use faer::{Mat, MatRef, Par};

use crate::contraction::buffers::recycle;
use crate::contraction::{
    add_on_diagonals, contract_renamed_into, contract_renamed_unordered, Label, Plan, Tensor,
};
use crate::error::Result;
use crate::gemm::product;

use super::bridges::{bridge, mean_tensor, LegNumbers};
use super::numbers::RawComponent;
use super::sums::{SumNode, LAST_STEP};
use super::topology::{
    rename_in, ComponentTopology, Leg, Network, Slot, TermPair, TermTopology, SHIFT,
};

/// Numbers of one component of one model.
#[derive(Clone, Debug)]
pub(super) struct ComponentNumbers {
    /// `[projection][position]`: `rows × (d_in+1)`, already multiplied by the
    /// input normaliser on the non-constant columns.
    pub projections: Vec<Vec<Mat<f64>>>,
    /// `[term][tensor]`, local labels.
    pub structure: Vec<Vec<Tensor>>,
    /// `[term]`: map from the term's output coordinates to the padded stream
    /// (`None`: identity).
    pub output_maps: Vec<Option<Mat<f64>>>,
    /// Normaliser divided out of this component's output stream.
    pub output_norm: f64,
    /// `[term]`: within-model bridges by leg pair `(i, j)`, `i < j`.
    pub within: Vec<HashMap<(usize, usize), Tensor>>,
    /// `[term][leg]`: means (`None` where zero).
    pub means: Vec<Vec<Option<Tensor>>>,
    /// `[term][open legs bitmask]`: dense reductions (`None` where expanded
    /// or where every matching vanishes).
    pub dense: Vec<Vec<Option<Tensor>>>,
}

/// The legs of a term with their projections.
fn leg_numbers<'a>(
    term: &'a TermTopology,
    legs: &'a [Leg],
    projections: &'a [Vec<Mat<f64>>],
) -> Vec<LegNumbers<'a>> {
    legs.iter()
        .map(|leg| LegNumbers {
            leg,
            projections: &projections[leg.projection],
            coord_dims: leg.coords.iter().map(|&c| term.dim(c)).collect(),
        })
        .collect()
}

impl ComponentNumbers {
    /// One model's numbers on `topology`, given its input moment: centred
    /// covariance `c` and means `mu` of the (normalised) input stream.
    pub fn new(
        raw: RawComponent,
        topology: &ComponentTopology,
        c: MatRef<'_, f64>,
        mu: &[Vec<f64>],
    ) -> Result<Self> {
        let mut numbers = ComponentNumbers {
            projections: raw.projections,
            structure: raw.structure,
            output_maps: raw.output_maps,
            output_norm: 1.0,
            within: Vec::new(),
            means: Vec::new(),
            dense: Vec::new(),
        };
        for t in &topology.terms {
            let legs = leg_numbers(t, &t.legs, &numbers.projections);
            let mut within = HashMap::new();
            for i in 0..legs.len() {
                for j in (i + 1)..legs.len() {
                    let tied = topology.ties(legs[i].leg.position, legs[j].leg.position);
                    within.insert((i, j), bridge(&legs[i], &legs[j], c, false, tied));
                }
            }
            numbers
                .means
                .push(legs.iter().map(|l| mean_tensor(l, mu)).collect());
            numbers.within.push(within);
        }
        for term in 0..topology.terms.len() {
            let dense = numbers.dense_reductions(topology, term)?;
            numbers.dense.push(dense);
        }
        Ok(numbers)
    }

    /// `R(open)` for every dense open set of `term`: the sum over partial
    /// matchings of the other legs (pairs bridged by the model's own
    /// covariance, unmatched legs by their means) contracted into the term's
    /// structure.
    fn dense_reductions(
        &self,
        topology: &ComponentTopology,
        term: usize,
    ) -> Result<Vec<Option<Tensor>>> {
        let t = &topology.terms[term];
        let side = self.as_side();
        (0..topology.reductions[term].len())
            .map(|open| {
                if !t.dense(open) {
                    return Ok(None);
                }
                let labels = t.reduced_labels(open);
                let dims: Vec<usize> = labels.iter().map(|&l| t.dim(l)).collect();
                let mut sum: Option<Vec<f64>> = None;
                for r in &topology.reductions[term][open] {
                    let network = r.network.as_ref().expect("dense reductions have networks");
                    let Some(t) = contract_network(network, (term, &side), (term, &side), None, 0)?
                    else {
                        continue;
                    };
                    let data = sum.get_or_insert_with(|| vec![0.0; dims.iter().product()]);
                    add_on_diagonals(data, &network.full_output, &dims, &t, 1.0);
                }
                Ok(sum.map(|data| Tensor::new(labels, dims, data).expect("reduced shape")))
            })
            .collect()
    }

    /// This model's tensors as side A (labels unshifted, borrowed).
    fn as_side(&self) -> Side<'_> {
        self.side_with(Cow::Borrowed)
    }

    /// This model's tensors as side B: every label shifted by [`SHIFT`].
    fn as_shifted_side(&self) -> Side<'_> {
        self.side_with(|t| Cow::Owned(t.relabeled(|l| l + SHIFT).into_owned()))
    }

    /// Every stored tensor passed through `f`.
    fn side_with<'a>(&'a self, f: impl Fn(&'a Tensor) -> Cow<'a, Tensor>) -> Side<'a> {
        Side {
            structure: self
                .structure
                .iter()
                .map(|t| t.iter().map(&f).collect())
                .collect(),
            within: self
                .within
                .iter()
                .map(|m| m.iter().map(|(k, v)| (*k, f(v))).collect())
                .collect(),
            means: self
                .means
                .iter()
                .map(|m| m.iter().map(|v| v.as_ref().map(&f)).collect())
                .collect(),
            dense: self
                .dense
                .iter()
                .map(|m| m.iter().map(|v| v.as_ref().map(&f)).collect())
                .collect(),
        }
    }
}

/// One model's tensors as they enter a pair (labels shifted on side B).
struct Side<'a> {
    structure: Vec<Vec<Cow<'a, Tensor>>>,
    within: Vec<HashMap<(usize, usize), Cow<'a, Tensor>>>,
    means: Vec<Vec<Option<Cow<'a, Tensor>>>>,
    dense: Vec<Vec<Option<Cow<'a, Tensor>>>>,
}

/// A slot's tensor, resolved against side A (`(term, side)`), side B and
/// the cross bridges (`[i * kb + j]`); `None` when it vanishes (a zero mean
/// or an all-zero reduction).
fn slot_tensor<'s>(
    slot: Slot,
    (ta, a): (usize, &'s Side<'_>),
    (tb, b): (usize, &'s Side<'_>),
    cross: Option<&'s [Tensor]>,
    kb: usize,
) -> Option<&'s Tensor> {
    let side = |is_b: bool| if is_b { (tb, b) } else { (ta, a) };
    match slot {
        Slot::Dense { b: is_b, open } => {
            let (term, s) = side(is_b);
            s.dense[term][open].as_deref()
        }
        Slot::Structure { b: is_b, k } => {
            let (term, s) = side(is_b);
            Some(s.structure[term][k].as_ref())
        }
        Slot::Within { b: is_b, i, j } => {
            let (term, s) = side(is_b);
            Some(s.within[term][&(i, j)].as_ref())
        }
        Slot::Mean { b: is_b, i } => {
            let (term, s) = side(is_b);
            s.means[term][i].as_deref()
        }
        Slot::Cross { i, j } => Some(&cross.expect("a pair network")[i * kb + j]),
    }
}

/// The input tensors of `network` ([`slot_tensor`]); `None` when a slot
/// vanishes.
fn network_inputs<'s>(
    network: &Network,
    a: (usize, &'s Side<'_>),
    b: (usize, &'s Side<'_>),
    cross: Option<&'s [Tensor]>,
    kb: usize,
) -> Option<Vec<&'s Tensor>> {
    network
        .slots
        .iter()
        .map(|&slot| slot_tensor(slot, a, b, cross, kb))
        .collect()
}

/// `network` contracted over [`network_inputs`] (axes in the order the
/// last step leaves them); `None` when a slot vanishes.
fn contract_network(
    network: &Network,
    a: (usize, &Side<'_>),
    b: (usize, &Side<'_>),
    cross: Option<&[Tensor]>,
    kb: usize,
) -> Result<Option<Tensor>> {
    let Some(inputs) = network_inputs(network, a, b, cross, kb) else {
        return Ok(None);
    };
    let rename = |l| network.rename(l);
    contract_renamed_unordered(&inputs, rename, &network.output, network.plan()).map(Some)
}

/// Summands of a factored sum evaluated sequentially per chunk, chunks in
/// parallel in groups; the chunk sums are added in order, so results do not
/// depend on the thread count, and at most one group of partial sums is
/// held at a time.
pub(super) const SUMS_PER_CHUNK: usize = 2;
pub(super) const CHUNKS_PER_GROUP: usize = 8;

/// Applies the output maps to the raw term-pair moment (labels
/// `[p, coords_a…, q, coords_b…]`) and adds it to `total` (only the blocks
/// `p = q` when `diagonal`). `mirror`: `Some(true)` for a diagonal term pair
/// of a self moment whose mirror images were skipped (its symmetric part is
/// added), `Some(false)` for an off-diagonal one (added with its
/// transpose), `None` for a cross moment.
pub(super) fn add_term_pair(
    total: &mut Mat<f64>,
    raw: &[f64],
    (ca, cb): (usize, usize),
    (map_a, map_b): (Option<&Mat<f64>>, Option<&Mat<f64>>),
    (n, diagonal): (usize, bool),
    mirror: Option<bool>,
) {
    let w_out = total.nrows() / n;
    let mut sum = Mat::<f64>::zeros(n * w_out, n * w_out);
    for p in 0..n {
        for q in 0..n {
            if diagonal && p != q {
                continue;
            }
            let block = Mat::from_fn(ca, cb, |i, j| raw[((p * ca + i) * n + q) * cb + j]);
            let left = match map_a {
                Some(m) => product(m.as_ref(), block.as_ref(), Par::Seq),
                None => block,
            };
            let both = match map_b {
                Some(m) => product(left.as_ref(), m.as_ref().transpose(), Par::Seq),
                None => left,
            };
            sum.as_mut()
                .submatrix_mut(p * w_out, q * w_out, w_out, w_out)
                .copy_from(both.as_ref());
        }
    }
    match mirror {
        Some(diagonal) => {
            // Mirror images are transposes: sym() of the reduced sum, and
            // off-diagonal term pairs count with their transposes.
            let factor = if diagonal { 0.5 } else { 1.0 };
            for r in 0..sum.nrows() {
                for c in 0..sum.ncols() {
                    total[(r, c)] += factor * (sum[(r, c)] + sum[(c, r)]);
                }
            }
        }
        None => *total += &sum,
    }
}

/// What the slots of a term pair's networks resolve against.
struct Inputs<'s, 'a> {
    a: (usize, &'s Side<'a>),
    b: (usize, &'s Side<'a>),
    cross: &'s [Tensor],
    kb: usize,
}

/// `acc += node`, its leaves weighted by `weight(crossing)`; `acc` stays
/// empty when nothing was added (every leaf weightless or vanishing).
fn add_node(
    node: &SumNode,
    inputs: &Inputs<'_, '_>,
    weight: &dyn Fn(usize) -> f64,
    acc: &mut Option<Tensor>,
) -> Result<()> {
    let (a, b, cross, kb) = (inputs.a, inputs.b, Some(inputs.cross), inputs.kb);
    match node {
        SumNode::Leaf { crossing, network } => {
            let w = weight(*crossing);
            if w == 0.0 {
                return Ok(());
            }
            let Some(tensors) = network_inputs(network, a, b, cross, kb) else {
                return Ok(());
            };
            let (output, plan) = (&network.output, network.plan());
            add_contraction(acc, &tensors, &network.renames, output, plan, w)
        }
        SumNode::Factored(f) => {
            let Some(last) = slot_tensor(f.last, a, b, cross, kb) else {
                return Ok(());
            };
            let mut sum = None;
            for child in &f.children {
                add_node(child, inputs, weight, &mut sum)?;
            }
            let Some(sum) = sum else {
                return Ok(());
            };
            let plan = Plan {
                steps: vec![LAST_STEP],
            };
            add_contraction(acc, &[&sum, last], &f.renames, &f.output, &plan, 1.0)?;
            recycle(sum.data);
            Ok(())
        }
    }
}

/// `acc += w · contract(tensors)` (labels renamed by `renames`); an empty
/// `acc` takes the result in the axis order its last step leaves, so that
/// later results mostly add in place.
fn add_contraction(
    acc: &mut Option<Tensor>,
    tensors: &[&Tensor],
    renames: &[(Label, Label)],
    output: &[Label],
    plan: &Plan,
    w: f64,
) -> Result<()> {
    let rename = |l| rename_in(renames, l);
    match acc {
        Some(acc) => contract_renamed_into(tensors, rename, output, plan, acc, w),
        None => {
            let mut t = contract_renamed_unordered(tensors, rename, output, plan)?;
            if w != 1.0 {
                t.data.iter_mut().for_each(|v| *v *= w);
            }
            *acc = Some(t);
            Ok(())
        }
    }
}

impl ComponentTopology {
    /// The cross bridges of a term pair, `[i * kb + j]`: leg `i` of `a`
    /// with leg `j` of `b` through `c_ab`.
    fn cross_bridges(
        &self,
        (ta, a): (usize, &ComponentNumbers),
        (tb, b): (usize, &ComponentNumbers),
        c_ab: MatRef<'_, f64>,
    ) -> Vec<Tensor> {
        use rayon::prelude::*;
        let (term_a, term_b) = (&self.terms[ta], &self.terms[tb]);
        let legs_b: Vec<Leg> = term_b.legs.iter().map(|l| l.shifted(SHIFT)).collect();
        let la = leg_numbers(term_a, &term_a.legs, &a.projections);
        let lb = leg_numbers(term_b, &legs_b, &b.projections);
        let pairs: Vec<(usize, usize)> = (0..la.len())
            .flat_map(|i| (0..lb.len()).map(move |j| (i, j)))
            .collect();
        pairs
            .par_iter()
            .map(|&(i, j)| {
                let tied = self.ties(la[i].leg.position, lb[j].leg.position);
                bridge(&la[i], &lb[j], c_ab, false, tied)
            })
            .collect()
    }

    /// `E[T_a T_b]` summed over all term pairs: the output moment
    /// `(n(d_out+1)) × (n(d_out+1))` (only its blocks of equal positions on
    /// a diagonal-output component), from each model's numbers and the
    /// cross covariance `c_ab`. With `mirror`, `a` and `b` are one model and
    /// each mirror pair of crossings is contracted once.
    pub fn moment(
        &self,
        a: &ComponentNumbers,
        b: &ComponentNumbers,
        c_ab: MatRef<'_, f64>,
        n: usize,
        mirror: bool,
    ) -> Result<Mat<f64>> {
        let w_out = self.output_dim + 1;
        let mut total = Mat::<f64>::zeros(n * w_out, n * w_out);
        let side_a = a.as_side();
        let side_b = b.as_shifted_side();
        for ta in 0..self.terms.len() {
            for tb in 0..self.terms.len() {
                if mirror && tb < ta {
                    continue;
                }
                let pair = &self.pairs[ta][tb];
                let cross = self.cross_bridges((ta, a), (tb, b), c_ab);
                let diagonal = mirror && ta == tb;
                let raw =
                    self.sum_networks(pair, (ta, &side_a), (tb, &side_b), &cross, diagonal)?;
                let (ca, cb) = (self.terms[ta].out_width(), self.terms[tb].out_width());
                add_term_pair(
                    &mut total,
                    &raw,
                    (ca, cb),
                    (a.output_maps[ta].as_ref(), b.output_maps[tb].as_ref()),
                    (n, self.diagonal_output),
                    mirror.then_some(ta == tb),
                );
            }
        }
        Ok(total)
    }

    /// The raw moment of one term pair: every summand of its factored sum
    /// evaluated, each network weighted by its crossing's mirror weight (on
    /// a diagonal term pair of a self moment) or 1, and added onto the
    /// output's diagonals.
    fn sum_networks(
        &self,
        pair: &TermPair,
        a: (usize, &Side<'_>),
        b: (usize, &Side<'_>),
        cross: &[Tensor],
        diagonal: bool,
    ) -> Result<Vec<f64>> {
        use rayon::prelude::*;
        let kb = self.terms[b.0].legs.len();
        let size: usize = pair.output_dims.iter().product();
        let mut raw = vec![0.0; size];
        let weight = |x: usize| {
            if diagonal {
                pair.crossings[x].mirror_weight
            } else {
                1.0
            }
        };
        let inputs = Inputs { a, b, cross, kb };
        for group in pair.sums.chunks(SUMS_PER_CHUNK * CHUNKS_PER_GROUP) {
            let partial: Vec<Vec<(&[Label], Tensor)>> = group
                .par_chunks(SUMS_PER_CHUNK)
                .map(|chunk| -> Result<Vec<(&[Label], Tensor)>> {
                    // Summands with one output pattern are summed compactly
                    // (over its distinct labels), then added onto the
                    // output's diagonals once.
                    let mut compact: Vec<(&[Label], Option<Tensor>)> = Vec::new();
                    for node in chunk {
                        let key = node.full_output();
                        let at = match compact.iter().position(|(k, _)| *k == key) {
                            Some(at) => at,
                            None => {
                                compact.push((key, None));
                                compact.len() - 1
                            }
                        };
                        add_node(node, &inputs, &weight, &mut compact[at].1)?;
                    }
                    Ok(compact
                        .into_iter()
                        .filter_map(|(k, t)| t.map(|t| (k, t)))
                        .collect())
                })
                .collect::<Result<_>>()?;
            for (key, acc) in partial.into_iter().flatten() {
                add_on_diagonals(&mut raw, key, &pair.output_dims, &acc, 1.0);
                recycle(acc.data);
            }
        }
        Ok(raw)
    }
}
