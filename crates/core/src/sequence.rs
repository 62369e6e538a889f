//! Exact Gaussian functional similarity of sequence models (MATH.md §3,
//! "Sequences and attention").
//!
//! The input is `x_p ~ N(0, I_vocab)` independently at every position
//! `p < n`. Second moments of the padded residual stream of both models,
//!
//! ```text
//! S_ab[(p,i),(q,j)] = E[x̂_a[p,i] · x̂_b[q,j]]      shape (n(d+1)) × (n(d+1))
//! ```
//!
//! (and `S_aa`, `S_bb`), are carried component by component. Every component
//! (embedding, attention + residual, MLP + residual, unembedding) is a sum of
//! *terms*, each a tensor network with *legs*: affine maps of the padded
//! stream at one position (`P x̂_p`, rotary included). The output moment is
//! the sum over all term pairs `(T_a, T_b)`, residual × attention included,
//! of `E[T_a · T_b]`.
//!
//! Treating the input of the component as Gaussian with mean `μ = E[x̂]` and
//! covariance `C = S − μμᵀ`, every leg is `m + g` (mean plus centred Gaussian),
//! so by Isserlis' theorem
//!
//! ```text
//! E[ℓ_1 ⋯ ℓ_k] = Σ_{partial matchings π} Π_{(i,j) ∈ π} Cov(ℓ_i, ℓ_j) · Π_{i unmatched} E[ℓ_i]
//! ```
//!
//! (the perfect matchings of all `k` legs when every mean is zero, 945 for
//! two attention terms; the unmatched legs are the "mean correction" of
//! MATH.md §3, which raw-moment Wick sums would over-count). A pair is a
//! *bridge* `P_i C_XY P_jᵀ` whose covariance block `C_aa`, `C_ab` or `C_bb`
//! is chosen by which model each leg belongs to.
//!
//! **Factorised sum.** Every partial matching of the joined legs splits into
//! a *crossing* (which legs of `T_a` pair with which legs of `T_b`, through
//! `C_ab`) and one partial matching within each model (through `C_aa`, `C_bb`
//! and the means). The within-model part depends on one model only, so it is
//! summed once per model at preparation: `R_a(open)` is the term's structure
//! contracted with the sum over partial matchings of its non-open legs. A
//! pair then costs one contraction per crossing,
//!
//! ```text
//! E[T_a T_b] = Σ_{crossings} R_a(open_a) · Π_{(i,j)} Cov(ℓ_i, ℓ'_j) · R_b(open_b)
//! ```
//!
//! (`Σ_c C(5,c)²·c! = 1546` crossings for two attention terms against 9496
//! partial matchings; 745 against 945 when every mean is zero). Each
//! crossing's contraction order is found once per architecture and cached in
//! a [`SequenceGeometry`] that all prepared models of that architecture share.
//! On the diagonal blocks (`E[T_a T_a]`) a crossing and its mirror image give
//! transposed results, so only one of each mirror pair is contracted.
//! At the first attention the input covariance is zero between positions
//! (embeddings of independent Gaussian positions), so a bridge ties its two
//! legs' positions: there a crossing merges the position labels its pairs
//! connect ([`Tensor::relabeled`] takes the diagonals), which removes up to
//! three position hyperedges from its network (about 20× faster at 8
//! positions).
//! Crossings run in parallel (rayon) in fixed chunks whose sums are added in
//! order, so results do not depend on the thread count. The full sum over
//! matchings stays as a reference path
//! ([`SequencePrepared::raw_inner_by_full_matchings`]) for tests.
//!
//! Exact when the model has one polynomial component (embed → attention →
//! unembed); deeper models use Gaussian closure, and results say so.
//!
//! **Normalisation.** After every component each model's stream is divided
//! by `c = sqrt(max_{p,i≥1} S_aa[(p,i),(p,i)])` (the constant coordinate
//! stays 1), and the next component's projections are multiplied by `c` on
//! their non-constant columns, so the function is unchanged and numbers stay
//! near 1. The last `c` is the model's log-scale. f64 throughout.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use faer::{Mat, MatRef, Par};

use crate::contraction::{contract_refs, optimal_plan, strided_offsets, Label, Plan, Tensor};
use crate::error::{Error, Result};
use crate::gaussian::Exactness;
use crate::gemm::product;
use crate::model::Linear;
use crate::padded::{pad_bilinear, pad_linear};
use crate::similarity::InnerProductSpace;
use crate::transformer::{rotary, Transformer, TransformerShape};
use crate::wick::{partial_matchings, permutations};

/// Local labels of a term: the output position and coordinate are fixed.
const POS: Label = 0;
const OUT: Label = 1;
/// Labels of the second term of a pair are shifted by this.
const SHIFT: Label = 32;

/// One leg: projection `projection` of the component applied at the position
/// labelled `position`, its rows split into the labelled `coords`.
#[derive(Clone, Debug)]
struct Leg {
    projection: usize,
    position: Label,
    coords: Vec<Label>,
}

/// The topology of a term: legs, and the labels of its fixed tensors.
#[derive(Clone, Debug)]
struct TermTopology {
    legs: Vec<Leg>,
    /// Labels of the term's output coordinates before its output map
    /// (`O` for attention, `D` for an MLP; the identity for affine terms).
    out_coords: Vec<Label>,
    /// Dimension of every local label (index = label).
    dims: Vec<usize>,
}

/// A component's topology, identical for every model of one architecture.
#[derive(Debug)]
struct ComponentTopology {
    terms: Vec<TermTopology>,
    input_dim: usize,
    output_dim: usize,
    /// The input covariance is zero between different positions (the first
    /// attention: embeddings of independent Gaussian positions), so every
    /// bridge ties its two legs' positions and crossings merge them.
    position_diagonal_input: bool,
    /// `[term][open legs bitmask]`: partial matchings of the other legs of
    /// a term within one model.
    reductions: Vec<Vec<Vec<Reduction>>>,
    /// `[term_a][term_b]`: the ways legs pair across the two models.
    crossings: Vec<Vec<Vec<Crossing>>>,
    /// `[term_a][term_b][matching]`: plans of the reference path (every
    /// partial matching of the joined legs), built on first use.
    plans: Vec<Vec<Vec<OnceLock<Plan>>>>,
}

/// One partial matching of a term's non-open legs (leg indices of the term)
/// and its contraction plan, built on first use.
#[derive(Debug)]
struct Reduction {
    matching: Matching,
    plan: OnceLock<Plan>,
}

/// Legs of term `a` paired one-to-one with legs of term `b`; the other legs
/// are reduced within their model (`open_*`: bitmasks of the paired legs).
#[derive(Debug)]
struct Crossing {
    open_a: usize,
    open_b: usize,
    /// `(leg of a, leg of b)`, sorted.
    pairs: Vec<(usize, usize)>,
    /// On a diagonal term pair of a self moment: 0 when the mirror image
    /// (`a` and `b` swapped) comes first, 2 when it comes later, 1 when the
    /// crossing is its own mirror image.
    mirror_weight: f64,
    plan: OnceLock<Plan>,
}

/// Everything about a sequence architecture that does not depend on weights:
/// term topologies, Wick matchings and cached contraction plans. Share one
/// (`Arc`) between all checkpoints of an architecture.
#[derive(Debug)]
pub struct SequenceGeometry {
    shape: TransformerShape,
    positions: usize,
    components: Vec<ComponentTopology>,
    /// Partial matchings of `k` legs, index `k`.
    matchings: Vec<Vec<Matching>>,
}

/// A partial matching: pairs of legs and unmatched legs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Matching {
    pairs: Vec<(usize, usize)>,
    singles: Vec<usize>,
}

/// Numbers of one component of one model.
#[derive(Clone, Debug)]
struct ComponentNumbers {
    /// `[projection][position]`: `rows × (d_in+1)`, already multiplied by the
    /// input normaliser on the non-constant columns.
    projections: Vec<Vec<Mat<f64>>>,
    /// `[term][tensor]`, local labels.
    structure: Vec<Vec<Tensor>>,
    /// `[term]`: map from the term's output coordinates to the padded stream
    /// (`None`: identity).
    output_maps: Vec<Option<Mat<f64>>>,
    /// Normaliser divided out of this component's output stream.
    output_norm: f64,
    /// `[term][open legs bitmask]`: within-model reductions
    /// ([`ComponentTopology::reduce_term`]); `None` where they vanish.
    reduced: Vec<Vec<Option<Vec<Tensor>>>>,
}

/// A transformer prepared for the `gaussian` metric: its numbers per
/// component, its own moment chain and final self inner products.
#[derive(Clone, Debug)]
pub struct SequencePrepared {
    geometry: Arc<SequenceGeometry>,
    components: Vec<ComponentNumbers>,
    /// Own second moment at each component's input (normalised).
    own_inputs: Vec<Mat<f64>>,
    self_inner: Vec<f64>,
    log_scale: f64,
    exactness: Exactness,
    fingerprint: u64,
}

fn linear_term(out_dim: usize) -> TermTopology {
    TermTopology {
        legs: vec![Leg {
            projection: 0,
            position: POS,
            coords: vec![OUT],
        }],
        out_coords: vec![OUT],
        dims: vec![0, out_dim],
    }
}

impl SequenceGeometry {
    /// The geometry of `shape` evaluated on sequences of `positions` tokens.
    pub fn new(shape: &TransformerShape, positions: usize) -> Result<Self> {
        shape.validate()?;
        if positions == 0 || positions > shape.context {
            return Err(Error::Invalid(format!(
                "{positions} Gaussian positions do not fit the context of {}",
                shape.context
            )));
        }
        let (v, d, h, dh) = (shape.vocab, shape.d_model, shape.heads, shape.head_dim);
        let n = positions;
        let mut components = Vec::new();
        let mut push = |terms: Vec<TermTopology>, input_dim, output_dim| {
            // Only the component right after the embedding sees positions
            // that are still independent.
            let position_diagonal_input = components.len() == 1;
            let plans = terms
                .iter()
                .map(|_| terms.iter().map(|_| Vec::new()).collect())
                .collect();
            components.push(ComponentTopology {
                terms,
                input_dim,
                output_dim,
                position_diagonal_input,
                reductions: Vec::new(),
                crossings: Vec::new(),
                plans,
            });
        };
        push(vec![linear_term(d + 1)], v, d);
        for b in &shape.blocks {
            // Attention: labels s=0, o=1, t=2, h=3, e1=4, e2=5, f=6.
            let (s, t, head, e1, e2, f) = (POS, 2, 3, 4, 5, 6);
            let leg = |projection, position, c: Label| Leg {
                projection,
                position,
                coords: vec![head, c],
            };
            let attention = TermTopology {
                legs: vec![
                    leg(1, s, e1),
                    leg(2, t, e1),
                    leg(3, s, e2),
                    leg(4, t, e2),
                    leg(5, t, f),
                ],
                out_coords: vec![head, f],
                dims: vec![n, d + 1, n, h, dh, dh, dh],
            };
            push(vec![linear_term(d + 1), attention], d, d);
            if let Some((hidden, _, _)) = b.mlp {
                // MLP: labels p=0, o=1, k=2 (hidden unit).
                let bilinear = TermTopology {
                    legs: vec![
                        Leg {
                            projection: 1,
                            position: POS,
                            coords: vec![2],
                        },
                        Leg {
                            projection: 2,
                            position: POS,
                            coords: vec![2],
                        },
                    ],
                    out_coords: vec![2],
                    dims: vec![n, d + 1, hidden],
                };
                push(vec![linear_term(d + 1), bilinear], d, d);
            }
        }
        push(vec![linear_term(v + 1)], d, v);
        let max_legs = components
            .iter()
            .flat_map(|c| c.terms.iter().map(|t| t.legs.len()))
            .max()
            .unwrap_or(1);
        let matchings: Vec<Vec<Matching>> = (0..=2 * max_legs)
            .map(|k| {
                partial_matchings(k)
                    .into_iter()
                    .map(|(pairs, singles)| Matching { pairs, singles })
                    .collect()
            })
            .collect();
        for c in &mut components {
            c.reductions = c
                .terms
                .iter()
                .map(|t| reductions(t.legs.len(), &matchings))
                .collect();
            c.crossings = c
                .terms
                .iter()
                .map(|ta| {
                    c.terms
                        .iter()
                        .map(|tb| crossings(ta.legs.len(), tb.legs.len()))
                        .collect()
                })
                .collect();
            for ta in 0..c.terms.len() {
                for tb in 0..c.terms.len() {
                    let k = c.terms[ta].legs.len() + c.terms[tb].legs.len();
                    c.plans[ta][tb] = (0..matchings[k].len()).map(|_| OnceLock::new()).collect();
                }
            }
        }
        Ok(SequenceGeometry {
            shape: shape.clone(),
            positions,
            components,
            matchings,
        })
    }

    /// Number of Gaussian positions.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// The architecture this geometry is for.
    pub fn shape(&self) -> &TransformerShape {
        &self.shape
    }

    /// Number of contraction plans built so far.
    pub fn plans_built(&self) -> usize {
        self.components
            .iter()
            .map(|c| {
                let reference = c.plans.iter().flatten().flatten();
                let reductions = c.reductions.iter().flatten().flatten().map(|r| &r.plan);
                let crossings = c.crossings.iter().flatten().flatten().map(|x| &x.plan);
                reference
                    .chain(reductions)
                    .chain(crossings)
                    .filter(|p| p.get().is_some())
                    .count()
            })
            .sum()
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
                    plan: OnceLock::new(),
                })
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
                    plan: OnceLock::new(),
                });
            }
        }
    }
    out
}

/// Affine map of the stream at every position in padded form `[[1,0],[b,W]]`.
fn padded_affine(weight: MatRef<'_, f64>, bias: Option<&[f64]>) -> Mat<f64> {
    pad_linear(&Linear {
        weight: weight.to_owned(),
        bias: bias.map(<[f64]>::to_vec),
    })
}

/// The residual (degree-1) part of a block in padded form:
/// `[[1, 0], [s·b, (1−s)·I]]`.
fn residual_map(d: usize, s: f64, bias: Option<&[f64]>) -> Mat<f64> {
    let mut w = Mat::zeros(d + 1, d + 1);
    w[(0, 0)] = 1.0;
    for i in 0..d {
        w[(i + 1, 0)] = s * bias.map_or(0.0, |b| b[i]);
        w[(i + 1, i + 1)] = 1.0 - s;
    }
    w
}

/// Multiplies the non-constant columns by `c` (the input stream was divided by it).
fn scale_inputs(mut p: Mat<f64>, c: f64) -> Mat<f64> {
    for j in 1..p.ncols() {
        for i in 0..p.nrows() {
            p[(i, j)] *= c;
        }
    }
    p
}

fn same_at_every_position(p: Mat<f64>, n: usize) -> Vec<Mat<f64>> {
    vec![p; n]
}

/// Projections `[projection][position]` and structure tensors `[term][tensor]`.
type Numbers = (Vec<Vec<Mat<f64>>>, Vec<Vec<Tensor>>, Vec<Option<Mat<f64>>>);

/// Rows `(h, e)` of an affine map of the stream (constant row dropped), with
/// the rotary rotation of `position` applied within each head when `rotate`.
fn leg_projection(
    l: &Linear,
    heads: usize,
    dh: usize,
    position: usize,
    base: f64,
    rotate: bool,
) -> Mat<f64> {
    let padded = padded_affine(l.weight.as_ref(), l.bias.as_deref());
    let rows = padded.as_ref().subrows(1, heads * dh);
    if !rotate {
        return rows.to_owned();
    }
    let r = rotary(position, dh, base);
    let mut rotated = Mat::zeros(heads * dh, rows.ncols());
    for h in 0..heads {
        let y = product(r.as_ref(), rows.subrows(h * dh, dh), Par::Seq);
        for e in 0..dh {
            for j in 0..rows.ncols() {
                rotated[(h * dh + e, j)] = y[(e, j)];
            }
        }
    }
    rotated
}

/// The numbers of each component of `model` (before input normalisation),
/// in the order of [`SequenceGeometry`]'s components.
fn component_numbers(model: &Transformer, n: usize) -> Vec<Numbers> {
    let d = model.d_model();
    let mut out: Vec<Numbers> = vec![(
        vec![same_at_every_position(
            padded_affine(model.embed.as_ref(), None),
            n,
        )],
        vec![vec![]],
        vec![None],
    )];
    for b in &model.blocks {
        let a = &b.attention;
        let s = a.residual_scale;
        let (heads, dh) = (a.heads, a.head_dim);
        let mut projections = vec![same_at_every_position(
            residual_map(d, s, a.out.bias.as_deref()),
            n,
        )];
        for (k, l) in a.projections().into_iter().enumerate() {
            projections.push(
                (0..n)
                    .map(|p| leg_projection(l, heads, dh, p, model.rotary_base, k < 4))
                    .collect(),
            );
        }
        let scale = s / (dh as f64 * dh as f64);
        let mask = Tensor::new(
            vec![POS, 2],
            vec![n, n],
            (0..n * n)
                .map(|k| scale * model.mask.weight(k / n, k % n))
                .collect(),
        )
        .expect("mask shape");
        let w = heads * dh;
        let o = Mat::from_fn(d + 1, w, |r, c| {
            if r == 0 {
                0.0
            } else {
                a.out.weight[(r - 1, c)]
            }
        });
        out.push((projections, vec![vec![], vec![mask]], vec![None, Some(o)]));
        if let Some(m) = &b.mlp {
            let s = m.residual_scale;
            let hidden = m.left.nrows();
            let mut no_residual = m.clone();
            no_residual.residual_scale = 1.0;
            no_residual.down_bias = None;
            let (left, right, _) = pad_bilinear(&no_residual);
            // pad_bilinear appends one constant unit; the bilinear term uses the first `hidden`.
            let left = left.as_ref().subrows(0, hidden).to_owned();
            let right = right.as_ref().subrows(0, hidden).to_owned();
            let down = Mat::from_fn(d + 1, hidden, |r, k| {
                if r == 0 {
                    0.0
                } else {
                    s * m.down[(r - 1, k)]
                }
            });
            let projections = vec![
                same_at_every_position(residual_map(d, s, m.down_bias.as_deref()), n),
                same_at_every_position(left, n),
                same_at_every_position(right, n),
            ];
            out.push((projections, vec![vec![], vec![]], vec![None, Some(down)]));
        }
    }
    out.push((
        vec![same_at_every_position(
            padded_affine(model.unembed.as_ref(), None),
            n,
        )],
        vec![vec![]],
        vec![None],
    ));
    out
}

/// The input moment: `x̂_p = [1; x_p]`, `x_p ~ N(0, I)` independent per position.
fn input_moment(n: usize, dim: usize) -> Mat<f64> {
    let w = dim + 1;
    Mat::from_fn(n * w, n * w, |r, c| {
        let (p, i, q, j) = (r / w, r % w, c / w, c % w);
        // The constant coordinate is 1 everywhere; x_p ⟂ x_q for p ≠ q.
        let constant = i == 0 && j == 0;
        let variance = i == j && i > 0 && p == q;
        if constant || variance {
            1.0
        } else {
            0.0
        }
    })
}

/// `E[x̂_p]` for every position, from the self moment (column `(p, 0)`).
fn means(s: MatRef<'_, f64>, n: usize, w: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|p| (0..w).map(|i| s[(p * w + i, p * w)]).collect())
        .collect()
}

/// Which model a leg of a term pair belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Inputs of one component evaluation: both sides' numbers and moments.
struct PairInputs<'a> {
    a: &'a ComponentNumbers,
    b: &'a ComponentNumbers,
    /// Centred covariances `C_aa`, `C_ab`, `C_bb` and means.
    c_aa: MatRef<'a, f64>,
    c_ab: MatRef<'a, f64>,
    c_bb: MatRef<'a, f64>,
    mu_a: &'a [Vec<f64>],
    mu_b: &'a [Vec<f64>],
}

/// Builds a tensor over the distinct labels of `labels` (dimensions `dims`,
/// repeats allowed: a repeated label takes the diagonal) from `value(index)`,
/// where `index` gives one entry per element of `labels`.
fn tensor_with_diagonals(
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
fn flat(index: &[usize], dims: &[usize]) -> usize {
    index.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// One leg of a term pair, its labels shifted by [`SHIFT`] on side B.
struct PlacedLeg {
    side: Side,
    projection: usize,
    position: Label,
    coords: Vec<Label>,
    coord_dims: Vec<usize>,
}

impl PlacedLeg {
    fn labels(&self) -> impl Iterator<Item = Label> + '_ {
        std::iter::once(self.position).chain(self.coords.iter().copied())
    }
}

/// The legs of `term` placed on `side`.
fn placed_legs(term: &TermTopology, side: Side) -> Vec<PlacedLeg> {
    let shift = match side {
        Side::A => 0,
        Side::B => SHIFT,
    };
    term.legs
        .iter()
        .map(|leg| PlacedLeg {
            side,
            projection: leg.projection,
            position: leg.position + shift,
            coords: leg.coords.iter().map(|c| c + shift).collect(),
            coord_dims: leg.coords.iter().map(|&c| term.dims[c as usize]).collect(),
        })
        .collect()
}

/// The bridge `Cov(ℓ_i, ℓ_j)`: blocks `P_i[p] C[p,q] P_j[q]ᵀ` over position
/// pairs (`C[q,p]ᵀ` when `transpose`), as a tensor over both legs' labels; a
/// label both legs carry (one position) takes the diagonal.
fn bridge(
    li: &PlacedLeg,
    pi: &[Mat<f64>],
    lj: &PlacedLeg,
    pj: &[Mat<f64>],
    c: MatRef<'_, f64>,
    transpose: bool,
) -> Tensor {
    let n = pi.len();
    let w_in = pi[0].ncols();
    let same_position = li.position == lj.position;
    let mut blocks: Vec<Option<Mat<f64>>> = Vec::with_capacity(n * n);
    for p in 0..n {
        for q in 0..n {
            if same_position && p != q {
                blocks.push(None);
                continue;
            }
            let cb = if transpose {
                c.submatrix(q * w_in, p * w_in, w_in, w_in).transpose()
            } else {
                c.submatrix(p * w_in, q * w_in, w_in, w_in)
            };
            let left = product(pi[p].as_ref(), cb, Par::Seq);
            blocks.push(Some(product(
                left.as_ref(),
                pj[q].as_ref().transpose(),
                Par::Seq,
            )));
        }
    }
    let labels: Vec<Label> = li.labels().chain(lj.labels()).collect();
    let dims: Vec<usize> = [
        vec![n],
        li.coord_dims.clone(),
        vec![n],
        lj.coord_dims.clone(),
    ]
    .concat();
    let (ni, nj) = (li.coords.len(), lj.coords.len());
    tensor_with_diagonals(&labels, &dims, |ix| {
        let p = ix[0];
        let q = ix[1 + ni];
        let r = flat(&ix[1..1 + ni], &li.coord_dims);
        let s = flat(&ix[2 + ni..2 + ni + nj], &lj.coord_dims);
        blocks[p * n + q].as_ref().expect("block on the diagonal")[(r, s)]
    })
}

/// `E[ℓ] = P[p] μ_p` at every position, and whether it is zero everywhere.
fn mean_tensor(l: &PlacedLeg, projections: &[Mat<f64>], mu: &[Vec<f64>]) -> (Tensor, bool) {
    let vectors: Vec<Vec<f64>> = projections
        .iter()
        .zip(mu)
        .map(|(m, mu)| {
            (0..m.nrows())
                .map(|r| (0..m.ncols()).map(|c| m[(r, c)] * mu[c]).sum())
                .collect()
        })
        .collect();
    let zero = vectors.iter().flatten().all(|&x| x == 0.0);
    let labels: Vec<Label> = l.labels().collect();
    let dims: Vec<usize> = [vec![projections.len()], l.coord_dims.clone()].concat();
    let t = tensor_with_diagonals(&labels, &dims, |ix| {
        vectors[ix[0]][flat(&ix[1..], &l.coord_dims)]
    });
    (t, zero)
}

/// Output labels of a term pair: `[p, coords_a…, q, coords_b…]`.
fn pair_output(term_a: &TermTopology, term_b: &TermTopology) -> Vec<Label> {
    std::iter::once(POS)
        .chain(term_a.out_coords.iter().copied())
        .chain(std::iter::once(POS + SHIFT))
        .chain(term_b.out_coords.iter().map(|c| c + SHIFT))
        .collect()
}

/// Width of a term's output coordinates before its output map.
fn out_width(t: &TermTopology) -> usize {
    t.out_coords.iter().map(|&c| t.dims[c as usize]).product()
}

fn shapes_of(network: &[&Tensor]) -> Vec<(Vec<Label>, Vec<usize>)> {
    network
        .iter()
        .map(|t| (t.labels.clone(), t.dims.clone()))
        .collect()
}

/// Applies the output maps to the raw term-pair moment (labels
/// `[p, coords_a…, q, coords_b…]`) and adds it to `total`. `mirror`: `Some(true)`
/// for a diagonal term pair of a self moment whose mirror images were skipped
/// (its symmetric part is added), `Some(false)` for an off-diagonal one (it
/// is added with its transpose), `None` for a cross moment.
fn add_term_pair(
    total: &mut Mat<f64>,
    raw: &[f64],
    (ca, cb): (usize, usize),
    (map_a, map_b): (Option<&Mat<f64>>, Option<&Mat<f64>>),
    n: usize,
    mirror: Option<bool>,
) {
    let w_out = total.nrows() / n;
    let mut sum = Mat::<f64>::zeros(n * w_out, n * w_out);
    for p in 0..n {
        for q in 0..n {
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

/// For a crossing on a position-diagonal input, the position labels its
/// bridges tie together: `(label, representative)` for every leg position,
/// the representative being the smallest label of its class.
fn merged_positions(
    legs_a: &[PlacedLeg],
    legs_b: &[PlacedLeg],
    pairs: &[(usize, usize)],
) -> Vec<(Label, Label)> {
    let mut roots: Vec<(Label, Label)> = Vec::new();
    for l in legs_a.iter().chain(legs_b) {
        if !roots.iter().any(|r| r.0 == l.position) {
            roots.push((l.position, l.position));
        }
    }
    let root_of = |roots: &[(Label, Label)], l: Label| {
        roots.iter().find(|r| r.0 == l).expect("a leg position").1
    };
    for &(i, j) in pairs {
        let (x, y) = (
            root_of(&roots, legs_a[i].position),
            root_of(&roots, legs_b[j].position),
        );
        let (keep, drop) = (x.min(y), x.max(y));
        for r in &mut roots {
            if r.1 == drop {
                r.1 = keep;
            }
        }
    }
    roots
}

/// Removes repeated labels, keeping first appearances in order.
fn dedup_in_order(labels: &mut Vec<Label>) {
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
fn add_on_diagonals(raw: &mut [f64], labels: &[Label], dims: &[usize], t: &Tensor, weight: f64) {
    if t.labels.as_slice() == labels {
        for (r, v) in raw.iter_mut().zip(&t.data) {
            *r += weight * v;
        }
        return;
    }
    // Stride in `raw` of each axis of `t`: the sum over the axes it stands for.
    let mut raw_stride = vec![1usize; labels.len()];
    for k in (0..labels.len().saturating_sub(1)).rev() {
        raw_stride[k] = raw_stride[k + 1] * dims[k + 1];
    }
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
    for (offset, v) in strided_offsets(&t.dims, &stride).zip(&t.data) {
        raw[offset] += weight * v;
    }
}

/// Crossings summed sequentially per chunk, chunks in parallel; the chunk
/// sums are added in order, so results do not depend on the thread count.
const CROSSINGS_PER_CHUNK: usize = 48;

impl ComponentTopology {
    /// The within-model reductions of term `term` of one model: for every set
    /// of open legs (bitmask), the sum over partial matchings of the other
    /// legs (pairs bridged by the model's own covariance `c`, unmatched legs
    /// by their means `μ`), contracted into the term's structure. `None`
    /// where every matching vanishes (zero means).
    fn reduce_term(
        &self,
        term: usize,
        numbers: &ComponentNumbers,
        c: MatRef<'_, f64>,
        mu: &[Vec<f64>],
    ) -> Result<Vec<Option<Vec<Tensor>>>> {
        let topology = &self.terms[term];
        let legs = placed_legs(topology, Side::A);
        let k = legs.len();
        let projection = |l: &PlacedLeg| &numbers.projections[l.projection][..];
        let mut bridges: HashMap<(usize, usize), Tensor> = HashMap::new();
        for i in 0..k {
            for j in (i + 1)..k {
                let t = bridge(
                    &legs[i],
                    projection(&legs[i]),
                    &legs[j],
                    projection(&legs[j]),
                    c,
                    false,
                );
                bridges.insert((i, j), t);
            }
        }
        let means: Vec<(Tensor, bool)> = legs
            .iter()
            .map(|l| mean_tensor(l, projection(l), mu))
            .collect();
        let structure = &numbers.structure[term];
        let out_labels: Vec<Label> = std::iter::once(POS)
            .chain(topology.out_coords.iter().copied())
            .collect();
        let all = (1usize << k) - 1;
        (0..=all)
            .map(|open| {
                if open == all {
                    return Ok(Some(structure.clone()));
                }
                let is_open = |i: usize| open >> i & 1 == 1;
                let mut keep = out_labels.clone();
                for (i, l) in legs.iter().enumerate() {
                    if is_open(i) {
                        keep.extend(l.labels());
                    }
                }
                let mut output: Vec<Label> = structure
                    .iter()
                    .flat_map(|t| t.labels.iter().copied())
                    .chain(
                        legs.iter()
                            .enumerate()
                            .filter(|&(i, _)| !is_open(i))
                            .flat_map(|(_, l)| l.labels()),
                    )
                    .filter(|l| keep.contains(l))
                    .collect();
                output.sort_unstable();
                output.dedup();
                let mut sum: Option<Tensor> = None;
                for r in &self.reductions[term][open] {
                    if r.matching.singles.iter().any(|&i| means[i].1) {
                        continue;
                    }
                    let mut network: Vec<&Tensor> = structure.iter().collect();
                    network.extend(r.matching.pairs.iter().map(|p| &bridges[p]));
                    network.extend(r.matching.singles.iter().map(|&i| &means[i].0));
                    let plan = r
                        .plan
                        .get_or_init(|| optimal_plan(&shapes_of(&network), &output));
                    let t = contract_refs(&network, &output, plan)?;
                    match &mut sum {
                        None => sum = Some(t),
                        Some(s) => {
                            for (x, y) in s.data.iter_mut().zip(&t.data) {
                                *x += y;
                            }
                        }
                    }
                }
                Ok(sum.map(|t| vec![t]))
            })
            .collect()
    }

    /// `E[T_a T_b]` summed over all term pairs: the output moment block
    /// `(n(d_out+1)) × (n(d_out+1))`, from each model's within-model
    /// reductions and the cross covariance `c_ab`. Every partial matching of
    /// the joined legs is one crossing (the legs paired across the models)
    /// and one matching within each side, so
    /// `E[T_a T_b] = Σ_crossings R_a(open_a) · Π bridges(C_ab) · R_b(open_b)`.
    /// With `mirror`, `a` and `b` are one model and each mirror pair of
    /// crossings is contracted once.
    fn moment(
        &self,
        a: &ComponentNumbers,
        b: &ComponentNumbers,
        c_ab: MatRef<'_, f64>,
        geometry: &SequenceGeometry,
        mirror: bool,
    ) -> Result<Mat<f64>> {
        use rayon::prelude::*;
        let n = geometry.positions;
        let mut total = Mat::<f64>::zeros(n * (self.output_dim + 1), n * (self.output_dim + 1));
        for (ta, term_a) in self.terms.iter().enumerate() {
            for (tb, term_b) in self.terms.iter().enumerate() {
                if mirror && tb < ta {
                    continue;
                }
                let legs_a = placed_legs(term_a, Side::A);
                let legs_b = placed_legs(term_b, Side::B);
                let kb = legs_b.len();
                let bridges: Vec<Tensor> = legs_a
                    .iter()
                    .flat_map(|la| {
                        legs_b.iter().map(move |lb| {
                            bridge(
                                la,
                                &a.projections[la.projection],
                                lb,
                                &b.projections[lb.projection],
                                c_ab,
                                false,
                            )
                        })
                    })
                    .collect();
                let reduced_a = &a.reduced[ta];
                let reduced_b: Vec<Option<Vec<Tensor>>> = b.reduced[tb]
                    .iter()
                    .map(|r| {
                        r.as_ref().map(|ts| {
                            ts.iter()
                                .map(|t| t.relabeled(|l| l + SHIFT).into_owned())
                                .collect()
                        })
                    })
                    .collect();
                let output = pair_output(term_a, term_b);
                let output_dims: Vec<usize> = std::iter::once(n)
                    .chain(term_a.out_coords.iter().map(|&c| term_a.dims[c as usize]))
                    .chain(std::iter::once(n))
                    .chain(term_b.out_coords.iter().map(|&c| term_b.dims[c as usize]))
                    .collect();
                let (ca, cb) = (out_width(term_a), out_width(term_b));
                let size = n * ca * n * cb;
                let diagonal = mirror && ta == tb;
                let chunks: Vec<Vec<f64>> = self.crossings[ta][tb]
                    .par_chunks(CROSSINGS_PER_CHUNK)
                    .map(|chunk| -> Result<Vec<f64>> {
                        let mut raw = vec![0.0; size];
                        for x in chunk {
                            let weight = if diagonal { x.mirror_weight } else { 1.0 };
                            if weight == 0.0 {
                                continue;
                            }
                            let (Some(ra), Some(rb)) = (&reduced_a[x.open_a], &reduced_b[x.open_b])
                            else {
                                continue;
                            };
                            let network = ra
                                .iter()
                                .chain(rb)
                                .chain(x.pairs.iter().map(|&(i, j)| &bridges[i * kb + j]));
                            // On a position-diagonal input, positions tied by
                            // the bridges become one label; elsewhere (and
                            // for crossings without pairs) nothing is renamed
                            // and every tensor stays borrowed.
                            let roots = if self.position_diagonal_input {
                                merged_positions(&legs_a, &legs_b, &x.pairs)
                            } else {
                                Vec::new()
                            };
                            let map = |l: Label| roots.iter().find(|r| r.0 == l).map_or(l, |r| r.1);
                            let merged: Vec<std::borrow::Cow<'_, Tensor>> =
                                network.map(|t| t.relabeled(map)).collect();
                            let network: Vec<&Tensor> = merged.iter().map(|t| t.as_ref()).collect();
                            let full: Vec<Label> = output.iter().map(|&l| map(l)).collect();
                            let mut distinct = full.clone();
                            dedup_in_order(&mut distinct);
                            let plan = x
                                .plan
                                .get_or_init(|| optimal_plan(&shapes_of(&network), &distinct));
                            let t = contract_refs(&network, &distinct, plan)?;
                            add_on_diagonals(&mut raw, &full, &output_dims, &t, weight);
                        }
                        Ok(raw)
                    })
                    .collect::<Result<_>>()?;
                let mut raw = vec![0.0; size];
                for chunk in &chunks {
                    for (r, v) in raw.iter_mut().zip(chunk) {
                        *r += v;
                    }
                }
                add_term_pair(
                    &mut total,
                    &raw,
                    (ca, cb),
                    (a.output_maps[ta].as_ref(), b.output_maps[tb].as_ref()),
                    n,
                    mirror.then_some(ta == tb),
                );
            }
        }
        Ok(total)
    }

    /// Reference for [`ComponentTopology::moment`]: every partial matching of
    /// the joined legs contracted on its own, bridges from `C_aa`, `C_ab` and
    /// `C_bb` chosen by side. Slower; for tests.
    fn moment_by_full_matchings(
        &self,
        inputs: &PairInputs<'_>,
        geometry: &SequenceGeometry,
    ) -> Result<Mat<f64>> {
        let n = geometry.positions;
        let w_out = self.output_dim + 1;
        let mut total = Mat::<f64>::zeros(n * w_out, n * w_out);
        for (ta, term_a) in self.terms.iter().enumerate() {
            for (tb, term_b) in self.terms.iter().enumerate() {
                let legs: Vec<PlacedLeg> = placed_legs(term_a, Side::A)
                    .into_iter()
                    .chain(placed_legs(term_b, Side::B))
                    .collect();
                let numbers = |side: Side| match side {
                    Side::A => inputs.a,
                    Side::B => inputs.b,
                };
                let projection = |l: &PlacedLeg| &numbers(l.side).projections[l.projection][..];
                let k = legs.len();
                let mut bridges: HashMap<(usize, usize), Tensor> = HashMap::new();
                for i in 0..k {
                    for j in (i + 1)..k {
                        let (li, lj) = (&legs[i], &legs[j]);
                        let (c, transpose) = match (li.side, lj.side) {
                            (Side::A, Side::A) => (inputs.c_aa, false),
                            (Side::B, Side::B) => (inputs.c_bb, false),
                            (Side::A, Side::B) => (inputs.c_ab, false),
                            (Side::B, Side::A) => (inputs.c_ab, true),
                        };
                        let t = bridge(li, projection(li), lj, projection(lj), c, transpose);
                        bridges.insert((i, j), t);
                    }
                }
                let means: Vec<(Tensor, bool)> = legs
                    .iter()
                    .map(|l| {
                        let mu = match l.side {
                            Side::A => inputs.mu_a,
                            Side::B => inputs.mu_b,
                        };
                        mean_tensor(l, projection(l), mu)
                    })
                    .collect();
                let structure: Vec<Tensor> = inputs.a.structure[ta]
                    .iter()
                    .cloned()
                    .chain(
                        inputs.b.structure[tb]
                            .iter()
                            .map(|t| t.relabeled(|l| l + SHIFT).into_owned()),
                    )
                    .collect();
                let output = pair_output(term_a, term_b);
                let (ca, cb) = (out_width(term_a), out_width(term_b));
                let mut raw = vec![0.0; n * ca * n * cb];
                for (mi, m) in geometry.matchings[k].iter().enumerate() {
                    if m.singles.iter().any(|&i| means[i].1) {
                        continue;
                    }
                    let mut network: Vec<&Tensor> = structure.iter().collect();
                    network.extend(m.pairs.iter().map(|p| &bridges[p]));
                    network.extend(m.singles.iter().map(|&i| &means[i].0));
                    let plan = self.plans[ta][tb][mi]
                        .get_or_init(|| optimal_plan(&shapes_of(&network), &output));
                    let result = contract_refs(&network, &output, plan)?;
                    for (r, v) in raw.iter_mut().zip(&result.data) {
                        *r += v;
                    }
                }
                add_term_pair(
                    &mut total,
                    &raw,
                    (ca, cb),
                    (
                        inputs.a.output_maps[ta].as_ref(),
                        inputs.b.output_maps[tb].as_ref(),
                    ),
                    n,
                    None,
                );
            }
        }
        Ok(total)
    }
}

/// `S − μ_a μ_bᵀ` blockwise over positions.
fn centred(s: MatRef<'_, f64>, mu_a: &[Vec<f64>], mu_b: &[Vec<f64>]) -> Mat<f64> {
    let (wa, wb) = (mu_a[0].len(), mu_b[0].len());
    Mat::from_fn(s.nrows(), s.ncols(), |r, c| {
        s[(r, c)] - mu_a[r / wa][r % wa] * mu_b[c / wb][c % wb]
    })
}

/// Divides coordinate `i ≥ 1` of each side by its normaliser (rows by `ca`, columns by `cb`).
fn normalise(mut s: Mat<f64>, w: usize, ca: f64, cb: f64) -> Mat<f64> {
    for c in 0..s.ncols() {
        let fc = if c % w == 0 { 1.0 } else { cb };
        for r in 0..s.nrows() {
            let fr = if r % w == 0 { 1.0 } else { ca };
            s[(r, c)] /= fr * fc;
        }
    }
    s
}

/// `sqrt` of the largest non-constant diagonal entry (1 when it is zero).
fn stream_norm(s: MatRef<'_, f64>, w: usize) -> f64 {
    let mut best = 0.0f64;
    for r in 0..s.nrows() {
        if r % w != 0 {
            best = best.max(s[(r, r)].abs());
        }
    }
    if best > 0.0 && best.is_finite() {
        best.sqrt()
    } else {
        1.0
    }
}

fn describe_shape_difference(a: &TransformerShape, b: &TransformerShape) -> (String, String) {
    let fields = [
        ("vocab", a.vocab.to_string(), b.vocab.to_string()),
        ("d_model", a.d_model.to_string(), b.d_model.to_string()),
        ("heads", a.heads.to_string(), b.heads.to_string()),
        ("head_dim", a.head_dim.to_string(), b.head_dim.to_string()),
        ("context", a.context.to_string(), b.context.to_string()),
        ("mask", a.mask.name().to_string(), b.mask.name().to_string()),
        (
            "blocks",
            format!("{:?}", a.blocks),
            format!("{:?}", b.blocks),
        ),
        (
            "rotary base",
            a.rotary_base.to_string(),
            b.rotary_base.to_string(),
        ),
    ];
    for (what, x, y) in fields {
        if x != y {
            return (format!("{what} {x}"), format!("{what} {y}"));
        }
    }
    ("same".into(), "same".into())
}

impl SequencePrepared {
    /// Prepares `model` on the geometry of its architecture (build the
    /// geometry once with [`SequenceGeometry::new`] and share it).
    pub fn new(model: &Transformer, geometry: Arc<SequenceGeometry>) -> Result<Self> {
        let shape = model.shape();
        if shape != geometry.shape {
            let (a, b) = describe_shape_difference(&geometry.shape, &shape);
            return Err(Error::Mismatch {
                what: "transformer architecture",
                a,
                b,
            });
        }
        let n = geometry.positions;
        let raw = component_numbers(model, n);
        let mut components = Vec::with_capacity(raw.len());
        let mut own_inputs = Vec::with_capacity(raw.len());
        let mut s = input_moment(n, model.vocab());
        let mut c_in = 1.0;
        for ((projections, structure, output_maps), topology) in
            raw.into_iter().zip(&geometry.components)
        {
            let projections: Vec<Vec<Mat<f64>>> = projections
                .into_iter()
                .map(|per_position| {
                    per_position
                        .into_iter()
                        .map(|p| scale_inputs(p, c_in))
                        .collect()
                })
                .collect();
            let mut numbers = ComponentNumbers {
                projections,
                structure,
                output_maps,
                output_norm: 1.0,
                reduced: Vec::new(),
            };
            let w_in = topology.input_dim + 1;
            let mu = means(s.as_ref(), n, w_in);
            let c = centred(s.as_ref(), &mu, &mu);
            numbers.reduced = (0..topology.terms.len())
                .map(|t| topology.reduce_term(t, &numbers, c.as_ref(), &mu))
                .collect::<Result<_>>()?;
            let out = topology.moment(&numbers, &numbers, c.as_ref(), &geometry, true)?;
            let w_out = topology.output_dim + 1;
            let norm = stream_norm(out.as_ref(), w_out);
            numbers.output_norm = norm;
            own_inputs.push(s);
            s = normalise(out, w_out, norm, norm);
            c_in = norm;
            components.push(numbers);
        }
        let vocab = model.vocab();
        let w = vocab + 1;
        let self_inner: Vec<f64> = (0..vocab)
            .map(|c| (0..n).map(|p| s[(p * w + c + 1, p * w + c + 1)]).sum())
            .collect();
        if let Some(bad) = self_inner.iter().find(|v| !v.is_finite()) {
            return Err(Error::NotFinite {
                what: "the model's own Gaussian moment".into(),
                value: *bad,
            });
        }
        let exactness = match model.polynomial_components() {
            0 | 1 => Exactness::Exact,
            k => Exactness::GaussianClosure {
                polynomial_layers: k,
            },
        };
        Ok(SequencePrepared {
            geometry,
            components,
            own_inputs,
            self_inner,
            log_scale: c_in.ln(),
            exactness,
            fingerprint: model.fingerprint(),
        })
    }

    /// Prepares `model` on a fresh geometry of `positions` Gaussian positions.
    pub fn standalone(model: &Transformer, positions: usize) -> Result<Self> {
        let geometry = Arc::new(SequenceGeometry::new(&model.shape(), positions)?);
        Self::new(model, geometry)
    }

    pub fn exactness(&self) -> Exactness {
        self.exactness
    }

    pub fn geometry(&self) -> &Arc<SequenceGeometry> {
        &self.geometry
    }

    /// The cross moment `S_ab` after the unembedding (normalised). With
    /// `full_matchings`, every component sums every partial matching of the
    /// joined legs on its own (the reference path) instead of crossings
    /// between the models' within-model reductions.
    fn cross_moment(&self, other: &Self, full_matchings: bool) -> Result<Mat<f64>> {
        let geometry = &self.geometry;
        let n = geometry.positions;
        let mut s = input_moment(n, geometry.shape.vocab);
        for (k, topology) in geometry.components.iter().enumerate() {
            let w_in = topology.input_dim + 1;
            let (own_a, own_b) = (&self.own_inputs[k], &other.own_inputs[k]);
            let mu_a = means(own_a.as_ref(), n, w_in);
            let mu_b = means(own_b.as_ref(), n, w_in);
            let c_ab = centred(s.as_ref(), &mu_a, &mu_b);
            let (a, b) = (&self.components[k], &other.components[k]);
            let out = if full_matchings {
                let c_aa = centred(own_a.as_ref(), &mu_a, &mu_a);
                let c_bb = centred(own_b.as_ref(), &mu_b, &mu_b);
                topology.moment_by_full_matchings(
                    &PairInputs {
                        a,
                        b,
                        c_aa: c_aa.as_ref(),
                        c_ab: c_ab.as_ref(),
                        c_bb: c_bb.as_ref(),
                        mu_a: &mu_a,
                        mu_b: &mu_b,
                    },
                    geometry,
                )?
            } else {
                topology.moment(a, b, c_ab.as_ref(), geometry, false)?
            };
            s = normalise(out, topology.output_dim + 1, a.output_norm, b.output_norm);
        }
        Ok(s)
    }

    fn check_same_geometry(&self, other: &Self) -> Result<()> {
        if !Arc::ptr_eq(&self.geometry, &other.geometry)
            && (self.geometry.shape != other.geometry.shape
                || self.geometry.positions != other.geometry.positions)
        {
            let (a, b) = describe_shape_difference(&self.geometry.shape, &other.geometry.shape);
            return Err(Error::Mismatch {
                what: "transformer architecture",
                a,
                b,
            });
        }
        Ok(())
    }

    /// Per-token inner products read off the final cross moment.
    fn token_inner(&self, s: &Mat<f64>) -> Vec<f64> {
        let n = self.geometry.positions;
        let w = self.geometry.shape.vocab + 1;
        (0..w - 1)
            .map(|c| (0..n).map(|p| s[(p * w + c + 1, p * w + c + 1)]).sum())
            .collect()
    }

    /// [`InnerProductSpace::raw_inner`] by the reference path: every partial
    /// matching of the joined legs of every term pair contracted on its own
    /// (9496 per pair of attention terms with means, against 1546 crossings).
    /// Slow; it exists to test the factorised sum.
    pub fn raw_inner_by_full_matchings(&self, other: &Self) -> Result<Vec<f64>> {
        self.check_same_geometry(other)?;
        let s = self.cross_moment(other, true)?;
        Ok(self.token_inner(&s))
    }
}

impl InnerProductSpace for SequencePrepared {
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    /// One output per vocabulary entry (summed over positions).
    fn outputs(&self) -> usize {
        self.self_inner.len()
    }
    fn log_scale(&self) -> f64 {
        self.log_scale
    }
    fn self_inner(&self) -> &[f64] {
        &self.self_inner
    }
    fn raw_inner(&self, other: &Self, _par: Par) -> Result<Vec<f64>> {
        self.check_same_geometry(other)?;
        let s = self.cross_moment(other, false)?;
        Ok(self.token_inner(&s))
    }
}

/// Gaussian functional similarity of two transformers on `positions`
/// independent `N(0, I)` input positions, with its exactness.
pub fn sequence_similarity(
    a: &Transformer,
    b: &Transformer,
    positions: usize,
) -> Result<(crate::similarity::Similarity, Exactness)> {
    let geometry = Arc::new(SequenceGeometry::new(&a.shape(), positions)?);
    let pa = SequencePrepared::new(a, geometry.clone())?;
    let pb = SequencePrepared::new(b, geometry)?;
    let s = crate::similarity::similarity(&pa, &pb, Par::Seq)?;
    Ok((s, pa.exactness().combine(pb.exactness())))
}
