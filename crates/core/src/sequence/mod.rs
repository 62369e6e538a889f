//! Exact Gaussian functional similarity of sequence models (MATH.md §3.7,
//! "Sequences and attention").
//!
//! The input is `x_p ~ N(0, I_vocab)` independently at every position
//! `p < n`. Second moments of the padded residual stream of both models,
//!
//! ```text
//! S_ab[(p,i),(q,j)] = E[x̂_a[p,i] · x̂_b[q,j]]      shape (n(d+1)) × (n(d+1))
//! ```
//!
//! (and `S_aa`, `S_bb`), are carried component by component. The embedding
//! is linear: `S_ab[p,p] = E_a E_bᵀ` on the blocks of equal positions, zero
//! between positions (plus the constant coordinate). Every attention or MLP
//! component (with its residual) is a sum of *terms*, each a tensor network
//! with *legs*: affine maps of the padded stream at one position (`P x̂_p`,
//! rotary included). The output moment is the sum over all term pairs
//! `(T_a, T_b)`, residual × attention included, of `E[T_a · T_b]`. The
//! similarity reads the logits' inner products per token,
//! `Σ_p (U_a S_ab[p,p] U_bᵀ)[c,c]`.
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
//! MATH.md §3.4, which raw-moment Wick sums would over-count). A pair is a
//! *bridge* `P_i C_XY P_jᵀ` whose covariance block `C_aa`, `C_ab` or `C_bb`
//! is chosen by which model each leg belongs to.
//!
//! **Factorised sum.** Every partial matching of the joined legs splits into
//! a *crossing* (which legs of `T_a` pair with which legs of `T_b`, through
//! `C_ab`) and one partial matching within each model (through `C_aa`, `C_bb`
//! and the means):
//!
//! ```text
//! E[T_a T_b] = Σ_{crossings} R_a(open_a) · Π_{(i,j)} Cov(ℓ_i, ℓ'_j) · R_b(open_b)
//! ```
//!
//! (`Σ_c C(5,c)²·c! = 1546` crossings for two attention terms). A within-model
//! reduction `R(open)` with at most two head-space coordinates is summed once
//! per model and stored; a larger one is *expanded* into its matchings, each
//! its own factor of the pair network (the private `topology` module says
//! why: fewer flops, small stored tensors). Each network's contraction order is found once per
//! architecture and cached in a [`SequenceGeometry`] shared by all prepared
//! models. On the diagonal blocks of a self moment a crossing and its mirror
//! image give transposed results, so only one of each mirror pair is
//! contracted.
//!
//! **Factored sums.** Networks of one term pair that contract the same
//! tensor last, meeting it with the same labels, are summed before they
//! meet it, `Σ_n contract(X_n, T) = contract(Σ_n X_n, T)`, two levels deep
//! (the private `sums` module): about 40% fewer flops at the paper's size,
//! exact as before.
//!
//! **Positions.** A bridge whose two positions must agree carries one
//! position label, and the network merges the positions it ties: at the
//! first attention (the input covariance is zero between positions), and
//! from the last attention on, where only the output blocks of equal
//! positions are needed (what follows is position-wise, and the similarity
//! reads the diagonal blocks), so the two output positions are one label.
//! Networks run in parallel in fixed chunks whose sums are added in order,
//! so results do not depend on the thread count. [`cost`] counts the
//! arithmetic and memory of a pair before it runs.
//!
//! The full sum over matchings stays as a reference path
//! (`SequencePrepared::raw_inner_by_full_matchings`, feature `reference`) for tests: it
//! computes every moment of the chain, all position blocks, on its own.
//!
//! Exact when the model has one polynomial component (embed → attention →
//! unembed); deeper models use Gaussian closure, and results say so.
//!
//! **Normalisation.** After the embedding and every component each model's
//! stream is divided by `c = sqrt(max_{p,i≥1} S_aa[(p,i),(p,i)])` (the
//! constant coordinate stays 1), and the next component's projections are
//! multiplied by `c` on their non-constant columns, so the function is
//! unchanged and numbers stay near 1. The logits' per-token inner products
//! are divided by the largest one; its square root is the log-scale. f64
//! throughout.

mod bridges;
pub mod cost;
mod moments;
mod numbers;
#[cfg(feature = "reference")]
mod reference;
mod sums;
mod topology;

use std::sync::Arc;

use faer::{Mat, Par};

use crate::error::{Error, Result};
use crate::gaussian::Exactness;
use crate::similarity::InnerProductSpace;
use crate::transformer::{Transformer, TransformerShape};

use moments::ComponentNumbers;
use numbers::{
    centred, component_numbers, embedded_moment, means, norm_of, normalise, scale_inputs,
    stream_norm, token_inner,
};
#[cfg(feature = "reference")]
use reference::PairInputs;
#[cfg(feature = "reference")]
use topology::Matching;
use topology::{all_matchings, ComponentTopology, Leg, TermTopology, OUT, POS};

/// Everything about a sequence architecture that does not depend on weights:
/// term topologies, Wick matchings, pair networks and their cached
/// contraction plans. Share one (`Arc`) between all checkpoints of an
/// architecture.
#[derive(Debug)]
pub struct SequenceGeometry {
    shape: TransformerShape,
    positions: usize,
    /// One per attention and per MLP, in order.
    components: Vec<ComponentTopology>,
    /// Partial matchings of `k` legs, index `k` (for the reference path).
    #[cfg(feature = "reference")]
    matchings: Vec<Vec<Matching>>,
}

/// The residual (degree-1) term of a block: the padded stream at the output
/// position.
fn residual_term(n: usize, d: usize) -> TermTopology {
    TermTopology {
        legs: vec![Leg {
            projection: 0,
            position: POS,
            coords: vec![OUT],
        }],
        out_coords: vec![OUT],
        structure: vec![],
        dims: vec![n, d + 1],
        coordinate_labels: vec![OUT],
    }
}

/// The attention term: labels s=0, o=1, t=2, h=3, e1=4, e2=5, f=6; legs
/// q1(s,e1), k1(t,e1), q2(s,e2), k2(t,e2), v(t,f), all in head h.
fn attention_term(n: usize, d: usize, heads: usize, dh: usize) -> TermTopology {
    let (s, t, head, e1, e2, f) = (POS, 2, 3, 4, 5, 6);
    let leg = |projection, position, c| Leg {
        projection,
        position,
        coords: vec![head, c],
    };
    TermTopology {
        legs: vec![
            leg(1, s, e1),
            leg(2, t, e1),
            leg(3, s, e2),
            leg(4, t, e2),
            leg(5, t, f),
        ],
        out_coords: vec![head, f],
        structure: vec![vec![s, t]],
        dims: vec![n, d + 1, n, heads, dh, dh, dh],
        coordinate_labels: vec![e1, e2, f],
    }
}

/// The bilinear MLP term: labels p=0, o=1, k=2 (hidden unit).
fn mlp_term(n: usize, d: usize, hidden: usize) -> TermTopology {
    let leg = |projection| Leg {
        projection,
        position: POS,
        coords: vec![2],
    };
    TermTopology {
        legs: vec![leg(1), leg(2)],
        out_coords: vec![2],
        structure: vec![],
        dims: vec![n, d + 1, hidden],
        coordinate_labels: vec![2],
    }
}

impl SequenceGeometry {
    /// The geometry of `shape` evaluated on sequences of `positions` tokens.
    pub fn new(shape: &TransformerShape, positions: usize) -> Result<Self> {
        shape.validate()?;
        if positions == 0 || positions > shape.context {
            return Err(Error::PositionsBeyondContext {
                positions,
                context: shape.context,
            });
        }
        let (d, n) = (shape.d_model, positions);
        let mut terms: Vec<Vec<TermTopology>> = Vec::new();
        let mut last_attention = 0;
        for b in &shape.blocks {
            if b.attention.is_some() {
                last_attention = terms.len();
                terms.push(vec![
                    residual_term(n, d),
                    attention_term(n, d, shape.heads, shape.head_dim),
                ]);
            }
            if let Some(crate::transformer::MlpShape { hidden, .. }) = b.mlp {
                terms.push(vec![residual_term(n, d), mlp_term(n, d, hidden)]);
            }
        }
        let max_legs = terms
            .iter()
            .flatten()
            .map(|t| t.legs.len())
            .max()
            .unwrap_or(1);
        let matchings = all_matchings(2 * max_legs);
        let components = terms
            .into_iter()
            .enumerate()
            .map(|(k, terms)| {
                ComponentTopology::new(terms, d, (k == 0, k >= last_attention), &matchings)
            })
            .collect();
        Ok(SequenceGeometry {
            shape: shape.clone(),
            positions,
            components,
            #[cfg(feature = "reference")]
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
                let reference = c.reference_plans.iter().flatten().flatten();
                let reductions = c
                    .reductions
                    .iter()
                    .flatten()
                    .flatten()
                    .filter_map(|r| r.network.as_ref().map(|n| &n.plan));
                let pairs = c
                    .pairs
                    .iter()
                    .flatten()
                    .flat_map(|p| p.sums.iter().flat_map(|s| s.leaves().map(|(_, n)| &n.plan)));
                reference
                    .chain(reductions)
                    .chain(pairs)
                    .filter(|p| p.get().is_some())
                    .count()
            })
            .sum()
    }
}

fn describe_shape_difference(a: &TransformerShape, b: &TransformerShape) -> (String, String) {
    let fields = [
        ("vocab", a.vocab.to_string(), b.vocab.to_string()),
        ("outputs", a.outputs.to_string(), b.outputs.to_string()),
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

/// A transformer prepared for the `gaussian` metric: its numbers per
/// component, its own moment chain and final self inner products.
#[derive(Clone, Debug)]
pub struct SequencePrepared {
    geometry: Arc<SequenceGeometry>,
    /// `E ∈ R^(d × vocab)` and the normaliser of the embedded stream.
    embed: Mat<f64>,
    embed_norm: f64,
    components: Vec<ComponentNumbers>,
    /// Own stream means `E[x̂_p]` at each component's input (normalised).
    own_means: Vec<Vec<Vec<f64>>>,
    /// `U ∈ R^(vocab × d)` times the last normaliser, and the normaliser of
    /// the logits' inner products.
    unembed: Mat<f64>,
    logit_norm: f64,
    self_inner: Vec<f64>,
    exactness: Exactness,
    fingerprint: u64,
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
        let w = model.d_model() + 1;
        let embed = model.embed.clone();
        let s = embedded_moment(embed.as_ref(), embed.as_ref(), n, (1.0, 1.0));
        let embed_norm = stream_norm(s.as_ref(), w);
        let mut s = normalise(s, w, embed_norm, embed_norm);
        let mut c_in = embed_norm;
        let mut components = Vec::new();
        let mut own_means = Vec::new();
        for (mut raw, topology) in component_numbers(model, n)
            .into_iter()
            .zip(&geometry.components)
        {
            raw.projections = std::mem::take(&mut raw.projections)
                .into_iter()
                .map(|per_position| {
                    per_position
                        .into_iter()
                        .map(|p| scale_inputs(p, c_in))
                        .collect()
                })
                .collect();
            let mu = means(s.as_ref(), n, w);
            let c = centred(s.as_ref(), &mu, &mu);
            let mut numbers = ComponentNumbers::new(raw, topology, c.as_ref(), &mu)?;
            let out = topology.moment(&numbers, &numbers, c.as_ref(), n, true)?;
            let norm = stream_norm(out.as_ref(), w);
            numbers.output_norm = norm;
            own_means.push(mu);
            s = normalise(out, w, norm, norm);
            c_in = norm;
            components.push(numbers);
        }
        let unembed = &model.unembed * faer::Scale(c_in);
        let inner = token_inner(s.as_ref(), unembed.as_ref(), unembed.as_ref(), n);
        let logit_norm = norm_of(inner.iter().copied());
        let self_inner: Vec<f64> = inner
            .iter()
            .map(|v| v / (logit_norm * logit_norm))
            .collect();
        if let Some(bad) = self_inner.iter().find(|v| !v.is_finite()) {
            return Err(Error::NotFinite {
                what: "the model's own Gaussian moment".into(),
                value: *bad,
            });
        }
        let exactness = exactness_of(model);
        Ok(SequencePrepared {
            geometry,
            embed,
            embed_norm,
            components,
            own_means,
            unembed,
            logit_norm,
            self_inner,
            exactness,
            fingerprint: model.fingerprint(),
        })
    }

    /// Prepares `model` on a fresh geometry of `positions` Gaussian positions.
    pub fn standalone(model: &Transformer, positions: usize) -> Result<Self> {
        let geometry = Arc::new(SequenceGeometry::new(&model.shape(), positions)?);
        Self::new(model, geometry)
    }

    /// Whether this model's moments are exact or rely on the Gaussian
    /// closure (MATH.md §3.7.9).
    pub fn exactness(&self) -> Exactness {
        self.exactness
    }

    /// The weight-independent geometry this model was prepared on.
    pub fn geometry(&self) -> &Arc<SequenceGeometry> {
        &self.geometry
    }

    /// The embedded cross moment `S_ab` (normalised).
    fn embedded_cross(&self, other: &Self) -> Mat<f64> {
        embedded_moment(
            self.embed.as_ref(),
            other.embed.as_ref(),
            self.geometry.positions,
            (self.embed_norm, other.embed_norm),
        )
    }

    /// Per-token inner products of the logits from the final cross moment.
    fn logit_inner(&self, other: &Self, s: &Mat<f64>) -> Vec<f64> {
        let n = self.geometry.positions;
        token_inner(s.as_ref(), self.unembed.as_ref(), other.unembed.as_ref(), n)
            .into_iter()
            .map(|v| v / (self.logit_norm * other.logit_norm))
            .collect()
    }

    /// The cross moment `S_ab` after the last component (normalised).
    fn cross_moment(&self, other: &Self) -> Result<Mat<f64>> {
        let geometry = &self.geometry;
        let n = geometry.positions;
        let w = geometry.shape.d_model + 1;
        let mut s = self.embedded_cross(other);
        for (k, topology) in geometry.components.iter().enumerate() {
            let (mu_a, mu_b) = (&self.own_means[k], &other.own_means[k]);
            let c_ab = centred(s.as_ref(), mu_a, mu_b);
            let (a, b) = (&self.components[k], &other.components[k]);
            let out = topology.moment(a, b, c_ab.as_ref(), n, false)?;
            s = normalise(out, w, a.output_norm, b.output_norm);
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

    /// [`InnerProductSpace::raw_inner`] by the reference path: every moment
    /// of the chain (`S_aa`, `S_ab`, `S_bb`, every position block) from
    /// every partial matching of the joined legs of every term pair, each
    /// contracted on its own (9496 per pair of attention terms with means).
    /// Slow; it exists to test the factorised sum (feature `reference`,
    /// on in the crate's own tests).
    #[cfg(feature = "reference")]
    pub fn raw_inner_by_full_matchings(&self, other: &Self) -> Result<Vec<f64>> {
        self.check_same_geometry(other)?;
        let geometry = &self.geometry;
        let n = geometry.positions;
        let w = geometry.shape.d_model + 1;
        let mut s_aa = self.embedded_cross(self);
        let mut s_ab = self.embedded_cross(other);
        let mut s_bb = other.embedded_cross(other);
        for (k, topology) in geometry.components.iter().enumerate() {
            let mu_a = means(s_aa.as_ref(), n, w);
            let mu_b = means(s_bb.as_ref(), n, w);
            let c_aa = centred(s_aa.as_ref(), &mu_a, &mu_a);
            let c_ab = centred(s_ab.as_ref(), &mu_a, &mu_b);
            let c_bb = centred(s_bb.as_ref(), &mu_b, &mu_b);
            let (a, b) = (&self.components[k], &other.components[k]);
            let moment = |x, y, c_xx, c_xy, c_yy, mu_x, mu_y| {
                topology.moment_by_full_matchings(
                    &PairInputs {
                        a: x,
                        b: y,
                        c_aa: c_xx,
                        c_ab: c_xy,
                        c_bb: c_yy,
                        mu_a: mu_x,
                        mu_b: mu_y,
                    },
                    geometry,
                )
            };
            let out_aa = moment(
                a,
                a,
                c_aa.as_ref(),
                c_aa.as_ref(),
                c_aa.as_ref(),
                &mu_a,
                &mu_a,
            )?;
            let out_ab = moment(
                a,
                b,
                c_aa.as_ref(),
                c_ab.as_ref(),
                c_bb.as_ref(),
                &mu_a,
                &mu_b,
            )?;
            let out_bb = moment(
                b,
                b,
                c_bb.as_ref(),
                c_bb.as_ref(),
                c_bb.as_ref(),
                &mu_b,
                &mu_b,
            )?;
            s_aa = normalise(out_aa, w, a.output_norm, a.output_norm);
            s_ab = normalise(out_ab, w, a.output_norm, b.output_norm);
            s_bb = normalise(out_bb, w, b.output_norm, b.output_norm);
        }
        Ok(self.logit_inner(other, &s_ab))
    }
}

impl InnerProductSpace for SequencePrepared {
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    /// One output per logit (summed over positions).
    fn outputs(&self) -> usize {
        self.self_inner.len()
    }
    fn log_scale(&self) -> f64 {
        self.logit_norm.ln()
    }
    fn self_inner(&self) -> &[f64] {
        &self.self_inner
    }
    fn raw_inner(&self, other: &Self, _par: Par) -> Result<Vec<f64>> {
        self.check_same_geometry(other)?;
        let s = self.cross_moment(other)?;
        Ok(self.logit_inner(other, &s))
    }
}

/// Whether the similarity of transformers like `model` is exact: through one
/// polynomial component it is; beyond, each later component reads a Gaussian
/// closure of the stream (MATH.md §3.7.9).
pub fn exactness_of(model: &Transformer) -> Exactness {
    match model.polynomial_components() {
        0 | 1 => Exactness::Exact,
        k => Exactness::GaussianClosure {
            polynomial_layers: k,
        },
    }
}

/// Gaussian functional similarity of two transformers on `positions`
/// independent `N(0, I)` input positions, with its exactness: the cosine of
/// `⟨f_a, f_b⟩_c = E[Σ_p f_a[p,c] f_b[p,c]]`, the uncentred inner product of
/// the logits flattened over positions, in total over the logits `c` and
/// per logit (MATH.md §3.7.8). Exact for one polynomial component
/// (§3.7.9).
///
/// ```
/// use tensim_core::sequence::sequence_similarity;
/// use tensim_core::transformer::{AttentionBias, AttentionShape, BlockShape, Mask, TransformerShape};
/// use tensim_core::{Exactness, Residual};
///
/// // One attention-only block: exact.
/// let shape = TransformerShape {
///     vocab: 5, outputs: 5, d_model: 4, heads: 2, head_dim: 2, context: 3,
///     mask: Mask::Causal,
///     rotary_base: 1e4,
///     blocks: vec![BlockShape {
///         attention: Some(AttentionShape {
///             bias: AttentionBias::all(false),
///             residual: Residual::Lerp(0.5),
///         }),
///         mlp: None,
///     }],
/// };
/// let a = shape.random_model(1).unwrap();
/// let b = shape.random_model(2).unwrap();
///
/// let (same, exactness) = sequence_similarity(&a, &a, 2).unwrap();
/// assert!((same.total - 1.0).abs() < 1e-10);
/// assert_eq!(exactness, Exactness::Exact);
/// let (ab, _) = sequence_similarity(&a, &b, 2).unwrap();
/// let (ba, _) = sequence_similarity(&b, &a, 2).unwrap();
/// assert_eq!(ab.total, ba.total);
/// assert!(ab.total.abs() < 1.0);
/// ```
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
