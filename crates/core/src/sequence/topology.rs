//! What a sequence architecture fixes before any weight is known: the terms
//! and legs of every component, the Wick matchings within one model, the
//! crossings between two, and the contraction networks a pair evaluates,
//! each with its labels, its merged positions and its cached plan.
//!
//! **Which networks.** `E[T_a T_b] = Σ_crossings R_a(open_a) · Π bridges · R_b(open_b)`
//! (module docs of [`super`]). A reduction `R(open)` with at most
//! [`DENSE_COORDINATES`] coordinate labels is summed once per model and
//! stored dense (a few head-space matrices); a larger one (three head-space
//! indices: `n²·d_head³` per head) would cost more to contract than its
//! matchings do, so it is *expanded*: each of its within-model matchings
//! enters the pair as its own factor (structure, within-model bridges,
//! means). Measured on the paper's size this halves the arithmetic of the
//! pure crossing sum and keeps every stored tensor small.

use std::sync::OnceLock;

use crate::contraction::{dedup_in_order, optimal_plan, Cost, Label, Plan};
use crate::wick::{partial_matchings, permutations};

use super::sums::{factor, SumNode, FACTOR_DEPTH};

/// Local labels of a term: the output position and coordinate are fixed.
pub(super) const POS: Label = 0;
pub(super) const OUT: Label = 1;
/// Labels of the second term of a pair are shifted by this.
pub(super) const SHIFT: Label = 32;
/// Reductions with at most this many coordinate labels are stored dense.
pub(super) const DENSE_COORDINATES: usize = 2;

/// One leg: projection `projection` of the component applied at the position
/// labelled `position`, its rows split into the labelled `coords`.
#[derive(Clone, Debug)]
pub(super) struct Leg {
    pub projection: usize,
    pub position: Label,
    pub coords: Vec<Label>,
}

impl Leg {
    pub fn labels(&self) -> impl Iterator<Item = Label> + '_ {
        std::iter::once(self.position).chain(self.coords.iter().copied())
    }

    /// The same leg with every label shifted by `shift`.
    pub fn shifted(&self, shift: Label) -> Leg {
        Leg {
            projection: self.projection,
            position: self.position + shift,
            coords: self.coords.iter().map(|c| c + shift).collect(),
        }
    }
}

/// The topology of a term: legs, and the labels of its fixed tensors.
#[derive(Clone, Debug)]
pub(super) struct TermTopology {
    pub legs: Vec<Leg>,
    /// Labels of the term's output coordinates before its output map
    /// (`O` for attention, `D` for an MLP; the identity for affine terms).
    pub out_coords: Vec<Label>,
    /// Labels of the structure tensors (the attention mask `[s, t]`).
    pub structure: Vec<Vec<Label>>,
    /// Dimension of every local label (index = label).
    pub dims: Vec<usize>,
    /// Labels that are coordinates (summed head-space or hidden indices),
    /// as opposed to positions and heads.
    pub coordinate_labels: Vec<Label>,
}

impl TermTopology {
    pub fn dim(&self, label: Label) -> usize {
        self.dims[(label % SHIFT) as usize]
    }

    /// Width of the output coordinates before the output map.
    pub fn out_width(&self) -> usize {
        self.out_coords.iter().map(|&c| self.dim(c)).product()
    }

    /// Labels of the within-model reduction `R(open)` (leg bitmask): the
    /// labels of the structure and of the reduced legs that the output or an
    /// open leg still needs, in ascending order.
    pub fn reduced_labels(&self, open: usize) -> Vec<Label> {
        let is_open = |i: usize| open >> i & 1 == 1;
        let mut keep: Vec<Label> = std::iter::once(POS)
            .chain(self.out_coords.iter().copied())
            .collect();
        for (i, l) in self.legs.iter().enumerate() {
            if is_open(i) {
                keep.extend(l.labels());
            }
        }
        let mut labels: Vec<Label> = self
            .structure
            .iter()
            .flatten()
            .copied()
            .chain(
                self.legs
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| !is_open(i))
                    .flat_map(|(_, l)| l.labels()),
            )
            .filter(|l| keep.contains(l))
            .collect();
        labels.sort_unstable();
        labels.dedup();
        labels
    }

    /// Whether `R(open)` (not every leg open) is summed once per model and
    /// stored, rather than expanded into its matchings.
    pub fn dense(&self, open: usize) -> bool {
        let all = (1usize << self.legs.len()) - 1;
        open != all
            && self
                .reduced_labels(open)
                .iter()
                .filter(|l| self.coordinate_labels.contains(l))
                .count()
                <= DENSE_COORDINATES
    }
}

/// A partial matching: pairs of legs and unmatched legs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Matching {
    pub pairs: Vec<(usize, usize)>,
    pub singles: Vec<usize>,
}

/// One partial matching of a term's non-open legs (leg indices of the term)
/// and its contraction plan into the dense reduction, built on first use.
#[derive(Debug)]
pub(super) struct Reduction {
    pub matching: Matching,
    /// Its network into the dense reduction (dense reductions only).
    pub network: Option<Network>,
}

/// Legs of term `a` paired one-to-one with legs of term `b`; the other legs
/// are reduced within their model (`open_*`: bitmasks of the paired legs).
#[derive(Debug)]
pub(super) struct Crossing {
    pub open_a: usize,
    pub open_b: usize,
    /// `(leg of a, leg of b)`, sorted.
    pub pairs: Vec<(usize, usize)>,
    /// On a diagonal term pair of a self moment: 0 when the mirror image
    /// (`a` and `b` swapped) comes first, 2 when it comes later, 1 when the
    /// crossing is its own mirror image.
    pub mirror_weight: f64,
}

/// How one model's side enters a pair network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Factor {
    /// Every leg is open: the term's structure tensors alone.
    Open,
    /// The stored reduction `R(open)` (one tensor).
    Dense { open: usize },
    /// Matching `matching` of `reductions[term][open]`: the term's structure,
    /// its within-model bridges and the means of its unmatched legs.
    Expanded { open: usize, matching: usize },
}

/// A tensor of a pair network, resolved against the two models' numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Slot {
    /// Side A (`false`) or B (`true`) stored reduction of its term.
    Dense { b: bool, open: usize },
    /// Structure tensor `k` of a side's term.
    Structure { b: bool, k: usize },
    /// Within-model bridge between legs `i < j` of a side's term.
    Within { b: bool, i: usize, j: usize },
    /// Mean of leg `i` of a side's term.
    Mean { b: bool, i: usize },
    /// Cross bridge between leg `i` of A and leg `j` of B.
    Cross { i: usize, j: usize },
}

/// A network of slots: their labels after the position merge, the output
/// labels (with repeats, and the distinct ones the contraction returns) and
/// the plan, found on first use.
#[derive(Debug)]
pub(super) struct Network {
    pub slots: Vec<Slot>,
    /// Rename applied to every tensor label (merged positions).
    pub renames: Vec<(Label, Label)>,
    /// Labels and dimensions of every tensor after the rename.
    pub shapes: Vec<(Vec<Label>, Vec<usize>)>,
    pub full_output: Vec<Label>,
    pub output: Vec<Label>,
    pub plan: OnceLock<Plan>,
}

impl Network {
    fn new(
        tensors: Vec<(Slot, Vec<Label>)>,
        renames: Vec<(Label, Label)>,
        output: &[Label],
        dim: impl Fn(Label) -> usize,
    ) -> Self {
        let rename = |l: Label| rename_in(&renames, l);
        let (slots, shapes) = tensors
            .into_iter()
            .map(|(slot, labels)| {
                let mut renamed: Vec<Label> = labels.iter().map(|&l| rename(l)).collect();
                dedup_in_order(&mut renamed);
                let dims = renamed.iter().map(|&l| dim(l)).collect();
                (slot, (renamed, dims))
            })
            .unzip();
        let full_output: Vec<Label> = output.iter().map(|&l| rename(l)).collect();
        let mut distinct = full_output.clone();
        dedup_in_order(&mut distinct);
        Network {
            slots,
            shapes,
            full_output,
            output: distinct,
            renames,
            plan: OnceLock::new(),
        }
    }

    pub fn plan(&self) -> &Plan {
        self.plan
            .get_or_init(|| optimal_plan(&self.shapes, &self.output))
    }

    pub fn cost(&self) -> Cost {
        self.plan().cost(&self.shapes, &self.output)
    }

    pub fn rename(&self, l: Label) -> Label {
        rename_in(&self.renames, l)
    }

    /// The network without slot `s`, returning `output` (labels after the
    /// rename): the inner part of a factored sum ([`super::sums`]).
    pub fn without(&self, s: usize, output: &[Label]) -> Network {
        let keep = |k: &usize| *k != s;
        Network {
            slots: (0..self.slots.len())
                .filter(keep)
                .map(|k| self.slots[k])
                .collect(),
            renames: self.renames.clone(),
            shapes: (0..self.shapes.len())
                .filter(keep)
                .map(|k| self.shapes[k].clone())
                .collect(),
            full_output: output.to_vec(),
            output: output.to_vec(),
            plan: OnceLock::new(),
        }
    }
}

/// `l` under the rename `renames` (`(label, representative)` pairs).
pub(super) fn rename_in(renames: &[(Label, Label)], l: Label) -> Label {
    renames.iter().find(|r| r.0 == l).map_or(l, |r| r.1)
}

/// Everything a term pair `(T_a, T_b)` evaluates: one network per crossing
/// and pair of factors, summed as [`super::sums`] factors them.
#[derive(Debug)]
pub(super) struct TermPair {
    pub crossings: Vec<Crossing>,
    pub sums: Vec<SumNode>,
    /// Output labels `[p, coords_a…, q, coords_b…]` (for the reference
    /// path) and their dimensions.
    #[cfg(feature = "reference")]
    pub output: Vec<Label>,
    pub output_dims: Vec<usize>,
}

/// A component's topology, identical for every model of one architecture.
#[derive(Debug)]
pub(super) struct ComponentTopology {
    pub terms: Vec<TermTopology>,
    pub output_dim: usize,
    /// The input covariance is zero between different positions (the first
    /// attention: embeddings of independent Gaussian positions), so every
    /// bridge ties its two legs' positions and networks merge them.
    pub position_diagonal_input: bool,
    /// Only the output blocks of equal positions are needed (every
    /// component from the last attention on: what follows is position-wise
    /// and the similarity reads the diagonal blocks).
    pub diagonal_output: bool,
    /// `[term][open legs bitmask]`: partial matchings of the other legs.
    pub reductions: Vec<Vec<Vec<Reduction>>>,
    /// `[term_a][term_b]`.
    pub pairs: Vec<Vec<TermPair>>,
    /// `[term_a][term_b][matching]`: plans of the reference path, built on
    /// first use.
    pub reference_plans: Vec<Vec<Vec<OnceLock<Plan>>>>,
}

/// Union of position labels tied by bridges: `(label, representative)`, the
/// representative being the smallest label of its class.
fn merge_positions(positions: &[Label], ties: &[(Label, Label)]) -> Vec<(Label, Label)> {
    let mut roots: Vec<(Label, Label)> = Vec::new();
    for &p in positions {
        if !roots.iter().any(|r| r.0 == p) {
            roots.push((p, p));
        }
    }
    let root =
        |roots: &[(Label, Label)], l: Label| roots.iter().find(|r| r.0 == l).map_or(l, |r| r.1);
    for &(x, y) in ties {
        let (rx, ry) = (root(&roots, x), root(&roots, y));
        let (keep, drop) = (rx.min(ry), rx.max(ry));
        for r in &mut roots {
            if r.1 == drop {
                r.1 = keep;
            }
        }
    }
    roots.retain(|r| r.0 != r.1);
    roots
}

/// The labels of a bridge between two legs: a label both carry (one
/// position, one head) appears once.
pub(super) fn bridge_labels(li: &Leg, lj: &Leg) -> Vec<Label> {
    let mut labels: Vec<Label> = li.labels().chain(lj.labels()).collect();
    dedup_in_order(&mut labels);
    labels
}

/// The labels of a cross bridge: both legs' labels, the second position
/// dropped when the bridge ties the two (only its diagonal is stored).
pub(super) fn cross_labels(li: &Leg, lj: &Leg, tied: bool) -> Vec<Label> {
    if tied {
        li.labels().chain(lj.coords.iter().copied()).collect()
    } else {
        bridge_labels(li, lj)
    }
}

impl ComponentTopology {
    pub fn new(
        terms: Vec<TermTopology>,
        output_dim: usize,
        (position_diagonal_input, diagonal_output): (bool, bool),
        matchings: &[Vec<Matching>],
    ) -> Self {
        let reductions = terms
            .iter()
            .map(|t| reductions(t.legs.len(), matchings))
            .collect();
        let mut c = ComponentTopology {
            terms,
            output_dim,
            position_diagonal_input,
            diagonal_output,
            reductions,
            pairs: Vec::new(),
            reference_plans: Vec::new(),
        };
        for term in 0..c.terms.len() {
            for open in 0..c.reductions[term].len() {
                if !c.terms[term].dense(open) {
                    continue;
                }
                for m in 0..c.reductions[term][open].len() {
                    let network = c.reduction_network(term, open, m);
                    c.reductions[term][open][m].network = Some(network);
                }
            }
        }
        c.pairs = (0..c.terms.len())
            .map(|ta| (0..c.terms.len()).map(|tb| c.term_pair(ta, tb)).collect())
            .collect();
        c.reference_plans = (0..c.terms.len())
            .map(|ta| {
                (0..c.terms.len())
                    .map(|tb| {
                        let k = c.terms[ta].legs.len() + c.terms[tb].legs.len();
                        (0..matchings[k].len()).map(|_| OnceLock::new()).collect()
                    })
                    .collect()
            })
            .collect();
        c
    }

    /// Whether a bridge between legs at positions `p` and `q` only has
    /// blocks of equal positions (its positions are merged).
    pub fn ties(&self, p: Label, q: Label) -> bool {
        let output = |l: Label| l % SHIFT == POS;
        self.position_diagonal_input || p == q || (self.diagonal_output && output(p) && output(q))
    }

    /// The output labels of a term pair: `[p, coords_a…, q, coords_b…]`.
    fn pair_output(&self, ta: usize, tb: usize) -> (Vec<Label>, Vec<usize>) {
        let (a, b) = (&self.terms[ta], &self.terms[tb]);
        let labels: Vec<Label> = std::iter::once(POS)
            .chain(a.out_coords.iter().copied())
            .chain(std::iter::once(POS + SHIFT))
            .chain(b.out_coords.iter().map(|c| c + SHIFT))
            .collect();
        let n = a.dims[POS as usize];
        let dims = std::iter::once(n)
            .chain(a.out_coords.iter().map(|&c| a.dim(c)))
            .chain(std::iter::once(n))
            .chain(b.out_coords.iter().map(|&c| b.dim(c)))
            .collect();
        (labels, dims)
    }

    /// The slots, labels and ties of one side's factor.
    fn factor_slots(&self, term: usize, b: bool, factor: Factor) -> Vec<(Slot, Vec<Label>)> {
        let t = &self.terms[term];
        let shift = if b { SHIFT } else { 0 };
        let sh = |ls: Vec<Label>| ls.into_iter().map(|l| l + shift).collect::<Vec<_>>();
        let structure = || {
            t.structure
                .iter()
                .enumerate()
                .map(|(k, ls)| (Slot::Structure { b, k }, sh(ls.clone())))
                .collect::<Vec<_>>()
        };
        match factor {
            Factor::Open => structure(),
            Factor::Dense { open } => vec![(Slot::Dense { b, open }, sh(t.reduced_labels(open)))],
            Factor::Expanded { open, matching } => {
                let m = &self.reductions[term][open][matching].matching;
                let mut out = structure();
                for &(i, j) in &m.pairs {
                    let labels = self.within_labels(t, i, j);
                    out.push((Slot::Within { b, i, j }, sh(labels)));
                }
                for &i in &m.singles {
                    out.push((Slot::Mean { b, i }, sh(t.legs[i].labels().collect())));
                }
                out
            }
        }
    }

    /// Labels of a within-model bridge of legs `i < j`, as
    /// [`bridge`](super::bridges::bridge) builds it: a label both legs carry
    /// appears once, and a tied second position takes the first's label.
    pub fn within_labels(&self, t: &TermTopology, i: usize, j: usize) -> Vec<Label> {
        let (li, lj) = (&t.legs[i], &t.legs[j]);
        let q = if self.ties(li.position, lj.position) {
            li.position
        } else {
            lj.position
        };
        let mut labels: Vec<Label> = li
            .labels()
            .chain(std::iter::once(q))
            .chain(lj.coords.iter().copied())
            .collect();
        dedup_in_order(&mut labels);
        labels
    }

    /// The network of one within-model matching of term `term`'s legs not in
    /// `open`, contracted into the dense reduction `R(open)` (labels
    /// [`TermTopology::reduced_labels`]).
    fn reduction_network(&self, term: usize, open: usize, matching: usize) -> Network {
        let t = &self.terms[term];
        let tensors = self.factor_slots(term, false, Factor::Expanded { open, matching });
        let m = &self.reductions[term][open][matching].matching;
        let ties: Vec<(Label, Label)> = m
            .pairs
            .iter()
            .map(|&(i, j)| (t.legs[i].position, t.legs[j].position))
            .filter(|&(p, q)| self.ties(p, q))
            .collect();
        let positions: Vec<Label> = t.legs.iter().map(|l| l.position).chain([POS]).collect();
        Network::new(
            tensors,
            merge_positions(&positions, &ties),
            &t.reduced_labels(open),
            |l| t.dim(l),
        )
    }

    /// Every network of term pair `(ta, tb)`.
    fn term_pair(&self, ta: usize, tb: usize) -> TermPair {
        let (term_a, term_b) = (&self.terms[ta], &self.terms[tb]);
        let crossings = crossings(term_a.legs.len(), term_b.legs.len());
        let (output, output_dims) = self.pair_output(ta, tb);
        let factors = |term: usize, open: usize| -> Vec<Factor> {
            if open == (1usize << self.terms[term].legs.len()) - 1 {
                vec![Factor::Open]
            } else if self.terms[term].dense(open) {
                vec![Factor::Dense { open }]
            } else {
                (0..self.reductions[term][open].len())
                    .map(|matching| Factor::Expanded { open, matching })
                    .collect()
            }
        };
        let mut networks = Vec::new();
        for (xi, x) in crossings.iter().enumerate() {
            for fa in factors(ta, x.open_a) {
                for fb in factors(tb, x.open_b) {
                    networks.push((xi, self.network(ta, tb, x, fa, fb, &output)));
                }
            }
        }
        let dim = |l: Label| {
            if l >= SHIFT {
                term_b.dim(l)
            } else {
                term_a.dim(l)
            }
        };
        TermPair {
            crossings,
            sums: factor(networks, FACTOR_DEPTH, &dim),
            #[cfg(feature = "reference")]
            output,
            output_dims,
        }
    }

    fn network(
        &self,
        ta: usize,
        tb: usize,
        x: &Crossing,
        fa: Factor,
        fb: Factor,
        output: &[Label],
    ) -> Network {
        let (term_a, term_b) = (&self.terms[ta], &self.terms[tb]);
        let legs_b: Vec<Leg> = term_b.legs.iter().map(|l| l.shifted(SHIFT)).collect();
        let mut tensors = self.factor_slots(ta, false, fa);
        tensors.extend(self.factor_slots(tb, true, fb));
        let mut ties: Vec<(Label, Label)> = Vec::new();
        for &(i, j) in &x.pairs {
            let (li, lj) = (&term_a.legs[i], &legs_b[j]);
            let tied = self.ties(li.position, lj.position);
            tensors.push((Slot::Cross { i, j }, cross_labels(li, lj, tied)));
            if tied {
                ties.push((li.position, lj.position));
            }
        }
        // Within-model pairs of expanded factors tie positions too.
        for (factor, legs, shift) in [(fa, &term_a.legs, 0), (fb, &term_b.legs, SHIFT)] {
            if let Factor::Expanded { open, matching } = factor {
                let term = if shift == 0 { ta } else { tb };
                for &(i, j) in &self.reductions[term][open][matching].matching.pairs {
                    let (p, q) = (legs[i].position, legs[j].position);
                    if self.ties(p, q) {
                        ties.push((p + shift, q + shift));
                    }
                }
            }
        }
        if self.diagonal_output {
            ties.push((POS, POS + SHIFT));
        }
        let positions: Vec<Label> = term_a
            .legs
            .iter()
            .map(|l| l.position)
            .chain(legs_b.iter().map(|l| l.position))
            .chain([POS, POS + SHIFT])
            .collect();
        let dim = |l: Label| {
            if l >= SHIFT {
                term_b.dim(l)
            } else {
                term_a.dim(l)
            }
        };
        Network::new(tensors, merge_positions(&positions, &ties), output, dim)
    }
}

/// For every bitmask of open legs of a `k`-leg term, the partial matchings
/// of the other legs (none when every leg is open).
fn reductions(k: usize, matchings: &[Vec<Matching>]) -> Vec<Vec<Reduction>> {
    (0..1usize << k)
        .map(|open| {
            let rest: Vec<usize> = (0..k).filter(|i| open >> i & 1 == 0).collect();
            if rest.is_empty() {
                return Vec::new();
            }
            matchings[rest.len()]
                .iter()
                .map(|m| Reduction {
                    matching: Matching {
                        pairs: m.pairs.iter().map(|&(i, j)| (rest[i], rest[j])).collect(),
                        singles: m.singles.iter().map(|&i| rest[i]).collect(),
                    },
                    network: None,
                })
                .collect()
        })
        .collect()
}

/// Every partial matching of `k` legs, index `k`.
pub(super) fn all_matchings(max_legs: usize) -> Vec<Vec<Matching>> {
    (0..=max_legs)
        .map(|k| {
            partial_matchings(k)
                .into_iter()
                .map(|(pairs, singles)| Matching { pairs, singles })
                .collect()
        })
        .collect()
}

/// Every one-to-one pairing of some legs of a `ka`-leg term with as many
/// legs of a `kb`-leg term (`Σ_c C(ka,c)·C(kb,c)·c!` of them: 1546 for two
/// attention terms), with mirror weights for diagonal term pairs.
fn crossings(ka: usize, kb: usize) -> Vec<Crossing> {
    let legs =
        |mask: usize, k: usize| -> Vec<usize> { (0..k).filter(|i| mask >> i & 1 == 1).collect() };
    let mut out = Vec::new();
    for open_a in 0..1usize << ka {
        for open_b in 0..1usize << kb {
            if open_a.count_ones() != open_b.count_ones() {
                continue;
            }
            let (la, lb) = (legs(open_a, ka), legs(open_b, kb));
            for image in permutations(&lb) {
                let pairs: Vec<(usize, usize)> = la.iter().copied().zip(image).collect();
                let mut mirrored: Vec<(usize, usize)> =
                    pairs.iter().map(|&(i, j)| (j, i)).collect();
                mirrored.sort_unstable();
                let key = (open_a, open_b, &pairs);
                let mirror_key = (open_b, open_a, &mirrored);
                let mirror_weight = match mirror_key.cmp(&key) {
                    std::cmp::Ordering::Less => 0.0,
                    std::cmp::Ordering::Equal => 1.0,
                    std::cmp::Ordering::Greater => 2.0,
                };
                out.push(Crossing {
                    open_a,
                    open_b,
                    pairs,
                    mirror_weight,
                });
            }
        }
    }
    out
}
