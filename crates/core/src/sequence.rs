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
//! is chosen by which model each leg belongs to; each matching is one
//! contraction of the joined network, ordered by a greedy plan found once per
//! architecture and cached in a [`SequenceGeometry`] that all prepared models
//! of that architecture share. Matchings with an unmatched leg whose mean is
//! zero are skipped. On the diagonal blocks (`E[T_a T_a]`) a matching and
//! its left/right mirror give transposed results, so only one of each mirror
//! pair is contracted.
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

use crate::contraction::{contract_refs, optimal_plan, Label, Plan, Tensor};
use crate::error::{Error, Result};
use crate::gaussian::Exactness;
use crate::gemm::product;
use crate::model::Linear;
use crate::padded::{pad_bilinear, pad_linear};
use crate::similarity::InnerProductSpace;
use crate::transformer::{rotary, Transformer, TransformerShape};
use crate::wick::partial_matchings;

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
    /// `[term_a][term_b][matching]`: contraction plans, built on first use.
    plans: Vec<Vec<Vec<OnceLock<Plan>>>>,
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
            let plans = terms
                .iter()
                .map(|_| terms.iter().map(|_| Vec::new()).collect())
                .collect();
            components.push(ComponentTopology {
                terms,
                input_dim,
                output_dim,
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
            .flat_map(|c| c.plans.iter().flatten().flatten())
            .filter(|p| p.get().is_some())
            .count()
    }
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

struct PlacedLeg<'a> {
    side: Side,
    leg: &'a Leg,
    /// Labels after shifting the second term's.
    position: Label,
    coords: Vec<Label>,
    coord_dims: Vec<usize>,
}

impl ComponentTopology {
    /// `E[T_a T_b]` summed over all term pairs: the output moment block
    /// `(n(d_out+1)) × (n(d_out+1))`. With `mirror`, `a` and `b` are one model
    /// and each mirror pair of matchings is contracted once.
    fn moment(
        &self,
        inputs: &PairInputs<'_>,
        geometry: &SequenceGeometry,
        mirror: bool,
    ) -> Result<Mat<f64>> {
        let n = geometry.positions;
        let w_out = self.output_dim + 1;
        let w_in = self.input_dim + 1;
        let mut total = Mat::<f64>::zeros(n * w_out, n * w_out);
        for (ta, term_a) in self.terms.iter().enumerate() {
            for (tb, term_b) in self.terms.iter().enumerate() {
                if mirror && tb < ta {
                    continue;
                }
                let mut legs: Vec<PlacedLeg<'_>> = Vec::new();
                for (side, term, shift) in [(Side::A, term_a, 0), (Side::B, term_b, SHIFT)] {
                    for leg in &term.legs {
                        legs.push(PlacedLeg {
                            side,
                            leg,
                            position: leg.position + shift,
                            coords: leg.coords.iter().map(|c| c + shift).collect(),
                            coord_dims: leg.coords.iter().map(|&c| term.dims[c as usize]).collect(),
                        });
                    }
                }
                let numbers = |side: Side| match side {
                    Side::A => inputs.a,
                    Side::B => inputs.b,
                };
                let projection = |l: &PlacedLeg<'_>, p: usize| -> &Mat<f64> {
                    &numbers(l.side).projections[l.leg.projection][p]
                };
                let k = legs.len();
                // Bridges Cov(ℓ_i, ℓ_j) for i < j, and means E[ℓ_i].
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
                        // blocks[p][q] = P_i[p] C[p,q] P_j[q]ᵀ
                        let mut blocks = Vec::with_capacity(n * n);
                        for p in 0..n {
                            for q in 0..n {
                                let cb = if transpose {
                                    c.submatrix(q * w_in, p * w_in, w_in, w_in).transpose()
                                } else {
                                    c.submatrix(p * w_in, q * w_in, w_in, w_in)
                                };
                                let left = product(projection(li, p).as_ref(), cb, Par::Seq);
                                blocks.push(product(
                                    left.as_ref(),
                                    projection(lj, q).as_ref().transpose(),
                                    Par::Seq,
                                ));
                            }
                        }
                        let labels: Vec<Label> = [
                            vec![li.position],
                            li.coords.clone(),
                            vec![lj.position],
                            lj.coords.clone(),
                        ]
                        .concat();
                        let dims: Vec<usize> = [
                            vec![n],
                            li.coord_dims.clone(),
                            vec![n],
                            lj.coord_dims.clone(),
                        ]
                        .concat();
                        let (ni, nj) = (li.coords.len(), lj.coords.len());
                        let t = tensor_with_diagonals(&labels, &dims, |ix| {
                            let p = ix[0];
                            let q = ix[1 + ni];
                            let r = flat(&ix[1..1 + ni], &li.coord_dims);
                            let s = flat(&ix[2 + ni..2 + ni + nj], &lj.coord_dims);
                            blocks[p * n + q][(r, s)]
                        });
                        bridges.insert((i, j), t);
                    }
                }
                let mut mean_tensors = Vec::with_capacity(k);
                let mut zero_mean = Vec::with_capacity(k);
                for l in &legs {
                    let mu = match l.side {
                        Side::A => inputs.mu_a,
                        Side::B => inputs.mu_b,
                    };
                    let vectors: Vec<Vec<f64>> = (0..n)
                        .map(|p| {
                            let m = projection(l, p);
                            (0..m.nrows())
                                .map(|r| (0..m.ncols()).map(|c| m[(r, c)] * mu[p][c]).sum())
                                .collect()
                        })
                        .collect();
                    zero_mean.push(vectors.iter().flatten().all(|&x| x == 0.0));
                    let labels: Vec<Label> = [vec![l.position], l.coords.clone()].concat();
                    let dims: Vec<usize> = [vec![n], l.coord_dims.clone()].concat();
                    let t = tensor_with_diagonals(&labels, &dims, |ix| {
                        vectors[ix[0]][flat(&ix[1..], &l.coord_dims)]
                    });
                    mean_tensors.push(t);
                }
                let structure: Vec<Tensor> = inputs.a.structure[ta]
                    .iter()
                    .cloned()
                    .chain(inputs.b.structure[tb].iter().map(|t| {
                        let mut t = t.clone();
                        for l in &mut t.labels {
                            *l += SHIFT;
                        }
                        t
                    }))
                    .collect();
                let output: Vec<Label> = [vec![POS], term_a.out_coords.clone(), vec![POS + SHIFT]]
                    .concat()
                    .into_iter()
                    .chain(term_b.out_coords.iter().map(|c| c + SHIFT))
                    .collect();
                let width = |t: &TermTopology| -> usize {
                    t.out_coords.iter().map(|&c| t.dims[c as usize]).product()
                };
                let (ca, cb) = (width(term_a), width(term_b));
                let na = term_a.legs.len();
                let mirror_of = |i: usize| if i < na { i + na } else { i - na };
                // Σ over matchings in the terms' own output coordinates.
                let mut raw = vec![0.0; n * ca * n * cb];
                for (mi, m) in geometry.matchings[k].iter().enumerate() {
                    if m.singles.iter().any(|&i| zero_mean[i]) {
                        continue;
                    }
                    let mut weight = 1.0;
                    if mirror && ta == tb {
                        let mut image = Matching {
                            pairs: m
                                .pairs
                                .iter()
                                .map(|&(i, j)| {
                                    let (x, y) = (mirror_of(i), mirror_of(j));
                                    (x.min(y), x.max(y))
                                })
                                .collect(),
                            singles: m.singles.iter().map(|&i| mirror_of(i)).collect(),
                        };
                        image.pairs.sort_unstable();
                        image.singles.sort_unstable();
                        match image.cmp(m) {
                            std::cmp::Ordering::Less => continue,
                            std::cmp::Ordering::Greater => weight = 2.0,
                            std::cmp::Ordering::Equal => {}
                        }
                    }
                    let mut network: Vec<&Tensor> = structure.iter().collect();
                    network.extend(m.pairs.iter().map(|p| &bridges[p]));
                    network.extend(m.singles.iter().map(|&i| &mean_tensors[i]));
                    let plan = self.plans[ta][tb][mi].get_or_init(|| {
                        let shapes: Vec<(Vec<Label>, Vec<usize>)> = network
                            .iter()
                            .map(|t| (t.labels.clone(), t.dims.clone()))
                            .collect();
                        optimal_plan(&shapes, &output)
                    });
                    let result = contract_refs(&network, &output, plan)?;
                    // result labels: [p, coords_a…, q, coords_b…], row-major.
                    for (r, v) in raw.iter_mut().zip(&result.data) {
                        *r += weight * v;
                    }
                }
                let (map_a, map_b) = (
                    inputs.a.output_maps[ta].as_ref(),
                    inputs.b.output_maps[tb].as_ref(),
                );
                let mut sum = Mat::<f64>::zeros(n * w_out, n * w_out);
                for p in 0..n {
                    for q in 0..n {
                        let block =
                            Mat::from_fn(ca, cb, |i, j| raw[((p * ca + i) * n + q) * cb + j]);
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
                if mirror {
                    // Mirror images are transposes: sym() of the reduced sum, and
                    // off-diagonal term pairs count with their transposes.
                    let factor = if ta == tb { 0.5 } else { 1.0 };
                    for r in 0..sum.nrows() {
                        for c in 0..sum.ncols() {
                            total[(r, c)] += factor * (sum[(r, c)] + sum[(c, r)]);
                        }
                    }
                } else {
                    total += &sum;
                }
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
            };
            let w_in = topology.input_dim + 1;
            let mu = means(s.as_ref(), n, w_in);
            let c = centred(s.as_ref(), &mu, &mu);
            let out = topology.moment(
                &PairInputs {
                    a: &numbers,
                    b: &numbers,
                    c_aa: c.as_ref(),
                    c_ab: c.as_ref(),
                    c_bb: c.as_ref(),
                    mu_a: &mu,
                    mu_b: &mu,
                },
                &geometry,
                true,
            )?;
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

    /// The cross moment `S_ab` after the unembedding (normalised).
    fn cross_moment(&self, other: &Self) -> Result<Mat<f64>> {
        let geometry = &self.geometry;
        let n = geometry.positions;
        let mut s = input_moment(n, geometry.shape.vocab);
        for (k, topology) in geometry.components.iter().enumerate() {
            let w_in = topology.input_dim + 1;
            let (own_a, own_b) = (&self.own_inputs[k], &other.own_inputs[k]);
            let mu_a = means(own_a.as_ref(), n, w_in);
            let mu_b = means(own_b.as_ref(), n, w_in);
            let c_aa = centred(own_a.as_ref(), &mu_a, &mu_a);
            let c_bb = centred(own_b.as_ref(), &mu_b, &mu_b);
            let c_ab = centred(s.as_ref(), &mu_a, &mu_b);
            let (a, b) = (&self.components[k], &other.components[k]);
            let out = topology.moment(
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
                false,
            )?;
            s = normalise(out, topology.output_dim + 1, a.output_norm, b.output_norm);
        }
        Ok(s)
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
        let s = self.cross_moment(other)?;
        let n = self.geometry.positions;
        let w = self.geometry.shape.vocab + 1;
        Ok((0..w - 1)
            .map(|c| (0..n).map(|p| s[(p * w + c + 1, p * w + c + 1)]).sum())
            .collect())
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
