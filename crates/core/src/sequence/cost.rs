//! The arithmetic of the exact sequence similarity before it runs: floating-
//! point operations and memory of preparing one model and of one pair, from
//! the geometry's networks and plans (the ones the engine executes), the
//! bridges and the output maps. `tensim bench` prints it beside measured
//! times; the CLI refuses a job whose estimated peak exceeds the memory
//! available, before it starts.
//!
//! Counted: every contraction step of every network (`2·Π dims` per GEMM,
//! see `Plan::cost` in the crate-internal contraction engine); bridges
//! `P_i[p] C[p,q] P_j[q]ᵀ` as two GEMMs per position block; output maps;
//! embedding and logits. Assumed: every mean is non-zero (biases), so no
//! network vanishes: an upper bound for models without biases.

use super::topology::{ComponentTopology, TermPair};
use super::SequenceGeometry;

/// What one evaluation costs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Floating-point operations of the contractions of the Wick networks.
    pub contraction_flops: f64,
    /// Floating-point operations of bridges, output maps, embedding and logits.
    pub other_flops: f64,
    /// Contraction networks evaluated.
    pub networks: usize,
    /// Largest tensor a contraction holds, in entries.
    pub largest_intermediate: usize,
    /// Estimated peak working memory in bytes (f64 entries), beyond the
    /// prepared models themselves.
    pub working_bytes: f64,
}

impl Cost {
    /// All floating-point operations: `contraction_flops + other_flops`.
    pub fn flops(&self) -> f64 {
        self.contraction_flops + self.other_flops
    }
}

const F64: f64 = 8.0;

/// Rows of projection `k` of a term pair side (its leg's coordinate sizes).
fn leg_rows(c: &ComponentTopology, term: usize, leg: usize) -> f64 {
    let t = &c.terms[term];
    t.legs[leg]
        .coords
        .iter()
        .map(|&l| t.dim(l) as f64)
        .product()
}

impl SequenceGeometry {
    fn stream_width(&self) -> f64 {
        (self.shape.d_model + 1) as f64
    }

    /// Flops of one bridge between leg `i` of `ta` and leg `j` of `tb`, its
    /// entries, at `blocks` position blocks.
    fn bridge_cost(
        &self,
        c: &ComponentTopology,
        (ta, i): (usize, usize),
        (tb, j): (usize, usize),
        tied: bool,
    ) -> (f64, f64) {
        let n = self.positions as f64;
        let blocks = if tied { n } else { n * n };
        let w = self.stream_width();
        let (ri, rj) = (leg_rows(c, ta, i), leg_rows(c, tb, j));
        (
            blocks * (2.0 * ri * w * w + 2.0 * ri * w * rj),
            blocks * ri * rj,
        )
    }

    /// The cost of one term pair's networks, cross bridges and output maps.
    fn term_pair_cost(
        &self,
        c: &ComponentTopology,
        (ta, tb): (usize, usize),
        mirror: bool,
    ) -> Cost {
        let pair: &TermPair = &c.pairs[ta][tb];
        let mut cost = Cost::default();
        let diagonal = mirror && ta == tb;
        let weight = |x: usize| {
            if diagonal {
                pair.crossings[x].mirror_weight
            } else {
                1.0
            }
        };
        for node in &pair.sums {
            if let Some((k, networks)) = node.cost(&weight) {
                cost.contraction_flops += k.flops;
                cost.networks += networks;
                cost.largest_intermediate = cost.largest_intermediate.max(k.largest);
            }
        }
        let mut bridge_entries = 0.0;
        let (la, lb) = (&c.terms[ta].legs, &c.terms[tb].legs);
        for i in 0..la.len() {
            for j in 0..lb.len() {
                let tied = c.ties(la[i].position, lb[j].position + super::topology::SHIFT);
                let (flops, entries) = self.bridge_cost(c, (ta, i), (tb, j), tied);
                cost.other_flops += flops;
                bridge_entries += entries;
            }
        }
        let n = self.positions as f64;
        let blocks = if c.diagonal_output { n } else { n * n };
        let w = self.stream_width();
        let (ca, cb) = (
            c.terms[ta].out_width() as f64,
            c.terms[tb].out_width() as f64,
        );
        cost.other_flops += blocks * (2.0 * w * ca * cb + 2.0 * w * cb * w);
        let output: f64 = pair.output_dims.iter().map(|&d| d as f64).product();
        let threads = rayon::current_num_threads() as f64;
        // Cross bridges, one group of chunk sums and the running sum, and per
        // thread a contraction's inputs, intermediate and result, the inner
        // sums of a factored summand and the buffers its pool keeps.
        let largest = F64 * cost.largest_intermediate as f64;
        let per_thread = (3.0 + super::sums::FACTOR_DEPTH as f64) * largest
            + crate::contraction::buffers::pooled_bytes(largest);
        cost.working_bytes = F64
            * (bridge_entries + (super::moments::CHUNKS_PER_GROUP as f64 + 1.0) * output)
            + threads * per_thread;
        cost
    }

    fn chain_cost(&self, mirror: bool) -> Cost {
        let (v, d, n) = (
            self.shape.vocab as f64,
            self.shape.d_model as f64,
            self.positions as f64,
        );
        let w = self.stream_width();
        let moments = 6.0 * (n * w) * (n * w) * F64;
        let mut total = Cost {
            other_flops: 2.0 * d * v * d + 2.0 * self.shape.outputs as f64 * d * d,
            working_bytes: moments,
            ..Cost::default()
        };
        for c in &self.components {
            for ta in 0..c.terms.len() {
                for tb in 0..c.terms.len() {
                    if mirror && tb < ta {
                        continue;
                    }
                    let k = self.term_pair_cost(c, (ta, tb), mirror);
                    total.contraction_flops += k.contraction_flops;
                    total.other_flops += k.other_flops;
                    total.networks += k.networks;
                    total.largest_intermediate =
                        total.largest_intermediate.max(k.largest_intermediate);
                    total.working_bytes = total.working_bytes.max(moments + k.working_bytes);
                }
            }
        }
        total
    }

    /// The cost of one pair of prepared models (their cross moment chain).
    /// Builds every plan not built yet.
    pub fn pair_cost(&self) -> Cost {
        self.chain_cost(false)
    }

    /// The cost of preparing one model: within-model bridges and dense
    /// reductions, then its own moment chain (one of each mirror pair).
    pub fn prepare_cost(&self) -> Cost {
        let mut cost = self.chain_cost(true);
        for c in &self.components {
            for (term, t) in c.terms.iter().enumerate() {
                for i in 0..t.legs.len() {
                    for j in (i + 1)..t.legs.len() {
                        let tied = c.ties(t.legs[i].position, t.legs[j].position);
                        cost.other_flops += self.bridge_cost(c, (term, i), (term, j), tied).0;
                    }
                }
                for reductions in &c.reductions[term] {
                    for r in reductions {
                        if let Some(network) = &r.network {
                            let k = network.cost();
                            cost.contraction_flops += k.flops;
                            cost.networks += 1;
                            cost.largest_intermediate = cost.largest_intermediate.max(k.largest);
                        }
                    }
                }
            }
        }
        cost
    }

    /// Estimated bytes one prepared model holds: its projections, its own
    /// stream means at every component's input, within-model bridges, leg
    /// means and dense reductions.
    pub fn model_bytes(&self) -> f64 {
        let (v, d, n) = (
            self.shape.vocab as f64,
            self.shape.d_model as f64,
            self.positions as f64,
        );
        let w = self.stream_width();
        let mut entries = (v + self.shape.outputs as f64) * d;
        for c in &self.components {
            entries += n * w;
            for (term, t) in c.terms.iter().enumerate() {
                for i in 0..t.legs.len() {
                    entries += n * leg_rows(c, term, i) * w;
                    for j in (i + 1)..t.legs.len() {
                        let tied = c.ties(t.legs[i].position, t.legs[j].position);
                        let blocks = if tied { n } else { n * n };
                        // Within one term the legs share their head: its diagonal.
                        let heads = if t.coordinate_labels.len() > 1 {
                            self.shape.heads as f64
                        } else {
                            1.0
                        };
                        entries += blocks * leg_rows(c, term, i) * leg_rows(c, term, j) / heads;
                    }
                }
                for open in 0..c.reductions[term].len() {
                    if t.dense(open) {
                        entries += t
                            .reduced_labels(open)
                            .iter()
                            .map(|&l| t.dim(l) as f64)
                            .product::<f64>();
                    }
                }
            }
        }
        entries * F64
    }

    /// Estimated peak memory of comparing `models` prepared models pairwise.
    pub fn peak_bytes(&self, models: usize) -> f64 {
        let prepare = self.prepare_cost().working_bytes;
        let pair = self.pair_cost().working_bytes;
        models as f64 * self.model_bytes() + prepare.max(pair)
    }
}
