//! The reference path: every partial matching of the joined legs of every
//! term pair contracted on its own (9496 per pair of attention terms with
//! means), bridges from `C_aa`, `C_ab` and `C_bb` chosen by side, and every
//! moment of the chain (`S_aa`, `S_ab`, `S_bb`, all position blocks)
//! computed this way. Slow; it exists to test the factorised sum.

use faer::{Mat, MatRef};

use crate::contraction::{contract_refs, optimal_plan, Tensor};
use crate::error::Result;

use super::bridges::{bridge, mean_tensor, LegNumbers};
use super::moments::{add_term_pair, ComponentNumbers};
use super::topology::{ComponentTopology, Leg, SHIFT};
use super::SequenceGeometry;

/// Inputs of one component evaluation: both sides' numbers and moments.
pub(super) struct PairInputs<'a> {
    pub a: &'a ComponentNumbers,
    pub b: &'a ComponentNumbers,
    /// Centred covariances `C_aa`, `C_ab`, `C_bb` and means.
    pub c_aa: MatRef<'a, f64>,
    pub c_ab: MatRef<'a, f64>,
    pub c_bb: MatRef<'a, f64>,
    pub mu_a: &'a [Vec<f64>],
    pub mu_b: &'a [Vec<f64>],
}

impl ComponentTopology {
    /// `E[T_a T_b]` summed over all term pairs, every partial matching of
    /// the joined legs contracted on its own; all position blocks.
    pub(super) fn moment_by_full_matchings(
        &self,
        inputs: &PairInputs<'_>,
        geometry: &SequenceGeometry,
    ) -> Result<Mat<f64>> {
        let n = geometry.positions;
        let w_out = self.output_dim + 1;
        let mut total = Mat::<f64>::zeros(n * w_out, n * w_out);
        for (ta, term_a) in self.terms.iter().enumerate() {
            for (tb, term_b) in self.terms.iter().enumerate() {
                // (leg, side is b, term).
                let legs: Vec<(Leg, bool)> = term_a
                    .legs
                    .iter()
                    .map(|l| (l.clone(), false))
                    .chain(term_b.legs.iter().map(|l| (l.shifted(SHIFT), true)))
                    .collect();
                let numbers: Vec<LegNumbers<'_>> = legs
                    .iter()
                    .map(|(leg, is_b)| {
                        let (term, side) = if *is_b {
                            (term_b, inputs.b)
                        } else {
                            (term_a, inputs.a)
                        };
                        LegNumbers {
                            leg,
                            projections: &side.projections[leg.projection],
                            coord_dims: leg.coords.iter().map(|&c| term.dim(c)).collect(),
                        }
                    })
                    .collect();
                let k = legs.len();
                let mut bridges: Vec<Vec<Option<Tensor>>> = vec![vec![None; k]; k];
                for i in 0..k {
                    for j in (i + 1)..k {
                        let (c, transpose) = match (legs[i].1, legs[j].1) {
                            (false, false) => (inputs.c_aa, false),
                            (true, true) => (inputs.c_bb, false),
                            (false, true) => (inputs.c_ab, false),
                            (true, false) => (inputs.c_ab, true),
                        };
                        bridges[i][j] = Some(bridge(&numbers[i], &numbers[j], c, transpose, false));
                    }
                }
                let means: Vec<Option<Tensor>> = numbers
                    .iter()
                    .zip(&legs)
                    .map(|(l, (_, is_b))| {
                        mean_tensor(l, if *is_b { inputs.mu_b } else { inputs.mu_a })
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
                let pair = &self.pairs[ta][tb];
                let output = &pair.output;
                let mut raw = vec![0.0; pair.output_dims.iter().product()];
                for (mi, m) in geometry.matchings[k].iter().enumerate() {
                    let mut network: Vec<&Tensor> = structure.iter().collect();
                    network.extend(
                        m.pairs
                            .iter()
                            .map(|&(i, j)| bridges[i][j].as_ref().expect("i < j")),
                    );
                    let Some(singles) = m
                        .singles
                        .iter()
                        .map(|&i| means[i].as_ref())
                        .collect::<Option<Vec<_>>>()
                    else {
                        continue;
                    };
                    network.extend(singles);
                    let shapes: Vec<_> = network
                        .iter()
                        .map(|t| (t.labels.clone(), t.dims.clone()))
                        .collect();
                    let plan = self.reference_plans[ta][tb][mi]
                        .get_or_init(|| optimal_plan(&shapes, output));
                    let result = contract_refs(&network, output, plan)?;
                    for (r, v) in raw.iter_mut().zip(&result.data) {
                        *r += v;
                    }
                }
                add_term_pair(
                    &mut total,
                    &raw,
                    (term_a.out_width(), term_b.out_width()),
                    (
                        inputs.a.output_maps[ta].as_ref(),
                        inputs.b.output_maps[tb].as_ref(),
                    ),
                    (n, false),
                    None,
                );
            }
        }
        Ok(total)
    }
}
