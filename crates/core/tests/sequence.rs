//! Exact Gaussian similarity of bilinear-attention transformers (MATH.md §3,
//! sequences): Monte-Carlo agreement, self-similarity, symmetry, the
//! invariances of attention, the mirror reduction, the factorised Wick sum,
//! and bad input.

mod common;

use std::sync::Arc;

use common::assert_within_four_standard_errors;
use faer::{Mat, Par};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tensim_core::monte_carlo::sequence_monte_carlo;
use tensim_core::sequence::{sequence_similarity, SequenceGeometry, SequencePrepared};
use tensim_core::transformer::{
    Attention, AttentionBias, Block, BlockShape, Mask, MlpShape, Transformer, TransformerShape,
};
use tensim_core::Residual;
use tensim_core::{similarity, InnerProductSpace};
use tensim_core::{Bilinear, Linear};

fn shape(
    bias: bool,
    residual: f64,
    mask: Mask,
    mlp: Option<(usize, bool, f64)>,
    layers: usize,
) -> TransformerShape {
    let mut block = BlockShape::attention_only(
        AttentionBias::all(bias),
        Residual::from_lerp_scale(residual),
    );
    if let Some((hidden, bias, s)) = mlp {
        block = block.with_mlp(hidden, [bias; 3], Residual::from_lerp_scale(s));
    }
    TransformerShape {
        mask,
        ..TransformerShape::causal(5, 4, (2, 2), 3, vec![block; layers])
    }
}

/// An editable copy of one block: its attention's six maps and its MLP
/// (the core's blocks are read-only; [`rebuild`] checks the edit).
struct EditBlock {
    q1: Linear,
    k1: Linear,
    q2: Linear,
    k2: Linear,
    v: Linear,
    out: Linear,
    mlp: Option<Bilinear>,
}

fn edit(t: &Transformer) -> Vec<EditBlock> {
    t.blocks()
        .iter()
        .map(|b| {
            let a = b.attention().expect("blocks with attention");
            let [q1, k1, q2, k2, v] = a.projections().map(Clone::clone);
            let out = a.out().clone();
            let mlp = b.mlp().cloned();
            EditBlock {
                q1,
                k1,
                q2,
                k2,
                v,
                out,
                mlp,
            }
        })
        .collect()
}

/// `t` with its blocks replaced by `blocks` (heads, residuals and the rest of `t` kept).
fn rebuild(t: &Transformer, blocks: Vec<EditBlock>) -> tensim_core::Result<Transformer> {
    let blocks = t
        .blocks()
        .iter()
        .zip(blocks)
        .map(|(old, e)| {
            let a = old.attention().expect("blocks with attention");
            let attention = Attention::new(
                a.heads(),
                a.head_dim(),
                [e.q1, e.k1, e.q2, e.k2, e.v],
                e.out,
                a.residual(),
            );
            Block::new(Some(attention), e.mlp)
        })
        .collect();
    Transformer::new(
        t.embedding().to_owned(),
        blocks,
        t.unembedding().to_owned(),
        t.context(),
        t.mask(),
        t.rotary_base(),
    )
}

/// `a` plus independent noise of relative size `eps` on every weight.
fn perturbed(a: &Transformer, eps: f64, seed: u64) -> Transformer {
    let mut rng = StdRng::seed_from_u64(seed);
    let values = a
        .parameters()
        .into_iter()
        .map(|v| {
            v.into_iter()
                .map(|x| x + eps * rng.random_range(-1.0..1.0))
                .collect()
        })
        .collect();
    Transformer::from_parameters(&a.shape(), values).unwrap()
}

fn exact(a: &Transformer, b: &Transformer, positions: usize) -> f64 {
    sequence_similarity(a, b, positions).unwrap().0.total
}

fn check_against_monte_carlo(s: &TransformerShape, label: &str) {
    let a = s.random_model(1).unwrap();
    for (b, what) in [
        (perturbed(&a, 0.3, 7), "perturbed"),
        (s.random_model(2).unwrap(), "independent"),
    ] {
        let value = exact(&a, &b, 3);
        let mc = sequence_monte_carlo(&a, &b, 3, 60_000, 11).unwrap();
        assert_within_four_standard_errors(value, &mc, &format!("{label} / {what}"));
    }
}

#[test]
fn one_attention_layer_equals_monte_carlo() {
    for (bias, residual, mask) in [
        (false, 1.0, Mask::Causal),
        (false, 0.6, Mask::Causal),
        (true, 1.0, Mask::Full),
        (true, 0.5, Mask::Causal),
    ] {
        let label = format!(
            "bias {bias}, residual scale {residual}, {} mask",
            mask.name()
        );
        check_against_monte_carlo(&shape(bias, residual, mask, None, 1), &label);
    }
}

/// `shape(…)` with additive residuals `x + s·f(x)` on every component (the
/// paper's pretrained family: attention-only, q/k/v/o biases, `s = 0.35`).
fn additive_shape(mlp: Option<usize>, layers: usize) -> TransformerShape {
    let mut s = shape(true, 0.35, Mask::Causal, None, layers);
    for b in &mut s.blocks {
        b.attention.as_mut().unwrap().residual = Residual::Add(0.35);
        b.mlp = mlp.map(|hidden| MlpShape {
            hidden,
            bias: [true; 3],
            residual: Residual::Add(0.5),
        });
    }
    s
}

#[test]
fn additive_attention_equals_monte_carlo() {
    check_against_monte_carlo(&additive_shape(None, 1), "additive residual");
}

#[test]
fn attention_with_mlp_and_two_layers_stay_close_to_monte_carlo() {
    // Gaussian closure after the first polynomial component: print the error, bound it loosely.
    for (layers, mlp) in [(1, Some((6, false, 0.5))), (2, None)] {
        let s = shape(false, 0.5, Mask::Causal, mlp, layers);
        let a = s.random_model(3).unwrap();
        let b = perturbed(&a, 0.3, 4);
        let (sim, exactness) = sequence_similarity(&a, &b, 3).unwrap();
        assert!(!exactness.is_exact());
        let mc = sequence_monte_carlo(&a, &b, 3, 40_000, 5).unwrap();
        let error = sim.total - mc.value;
        println!(
            "{layers} layer(s), MLP {}: closure {:.5} vs Monte-Carlo {:.5} ± {:.5} (error {error:+.5})",
            mlp.is_some(),
            sim.total,
            mc.value,
            mc.std_error
        );
        assert!(error.abs() < 0.1, "closure error {error}");
    }
}

#[test]
fn self_similarity_is_one_and_symmetry_is_exact() {
    let s = shape(true, 0.5, Mask::Causal, Some((6, true, 0.7)), 2);
    let a = s.random_model(1).unwrap();
    let b = s.random_model(2).unwrap();
    let geometry = Arc::new(SequenceGeometry::new(&s, 3).unwrap());
    let pa = SequencePrepared::new(&a, geometry.clone()).unwrap();
    let pb = SequencePrepared::new(&b, geometry).unwrap();
    let self_sim = similarity(&pa, &pa, Par::Seq).unwrap();
    assert!((self_sim.total - 1.0).abs() < 1e-12, "{}", self_sim.total);
    for c in self_sim.per_output {
        assert!((c - 1.0).abs() < 1e-12);
    }
    let ab = similarity(&pa, &pb, Par::Seq).unwrap();
    let ba = similarity(&pb, &pa, Par::Seq).unwrap();
    assert_eq!(ab.total.to_bits(), ba.total.to_bits());
    assert_eq!(ab, ba);
}

#[test]
fn mirror_reduction_equals_the_full_sum() {
    // The own moment chain contracts one matching of each mirror pair; the
    // cross moment of a model with itself contracts all of them.
    for s in [
        shape(true, 0.5, Mask::Causal, Some((6, true, 0.7)), 1),
        shape(false, 1.0, Mask::Full, None, 2),
    ] {
        let a = s.random_model(9).unwrap();
        let pa = SequencePrepared::standalone(&a, 3).unwrap();
        let reduced = pa.self_inner().to_vec();
        let full = pa.raw_inner(&pa, Par::Seq).unwrap();
        for (x, y) in reduced.iter().zip(&full) {
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1e-300), "{x} vs {y}");
        }
    }
}

#[test]
fn crossings_of_within_model_reductions_equal_every_matching() {
    // The fast path sums crossings between each model's within-model
    // reductions; the reference contracts every partial matching of the
    // joined legs (with means: biases, and the stream after an MLP).
    // Attention-only with biases (the paper's blocks), 1 and 2 layers, both
    // masks, with and without MLPs and biases: the expanded and dense
    // factors, the position merges at the first attention and the diagonal
    // output from the last attention on all take part.
    for s in [
        shape(true, 0.5, Mask::Causal, Some((6, true, 0.7)), 2),
        shape(false, 1.0, Mask::Full, None, 1),
        shape(false, 0.3, Mask::Causal, Some((5, false, 0.4)), 2),
        shape(true, 0.35, Mask::Causal, None, 2),
        shape(true, 1.0, Mask::Full, None, 1),
        shape(false, 0.5, Mask::Causal, Some((4, false, 0.5)), 1),
        additive_shape(Some(4), 1),
    ] {
        check_against_full_matchings(&s, "");
    }
}

/// The fast raw inner products of a random model of `s` and a perturbed
/// copy on 3 positions equal the reference sum over every matching, to
/// 1e-12 of the largest, one per logit.
fn check_against_full_matchings(s: &TransformerShape, label: &str) {
    let a = s.random_model(4).unwrap();
    let b = perturbed(&a, 0.3, 5);
    let geometry = Arc::new(SequenceGeometry::new(s, 3).unwrap());
    let pa = SequencePrepared::new(&a, geometry.clone()).unwrap();
    let pb = SequencePrepared::new(&b, geometry).unwrap();
    let fast = pa.raw_inner(&pb, Par::Seq).unwrap();
    let full = pa.raw_inner_by_full_matchings(&pb).unwrap();
    assert_eq!(
        fast.len(),
        s.outputs,
        "{label}: one inner product per logit"
    );
    let scale = full.iter().map(|x| x.abs()).fold(0.0, f64::max);
    assert!(scale > 0.0);
    for (x, y) in fast.iter().zip(&full) {
        assert!((x - y).abs() <= 1e-12 * scale, "{label}: {x} vs {y}");
    }
}

fn permute_rows(m: &Mat<f64>, perm: &[usize]) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(perm[i], j)])
}

fn permute_cols(m: &Mat<f64>, perm: &[usize]) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, perm[j])])
}

fn permute_vec(v: &Option<Vec<f64>>, perm: &[usize]) -> Option<Vec<f64>> {
    v.as_ref().map(|v| perm.iter().map(|&i| v[i]).collect())
}

#[test]
fn attention_symmetries_leave_similarity_at_one() {
    let s = TransformerShape {
        heads: 2,
        head_dim: 4,
        d_model: 4,
        ..shape(true, 0.6, Mask::Causal, Some((5, true, 0.8)), 1)
    };
    let a = s.random_model(21).unwrap();
    let (heads, dh) = (2, 4);
    let mut variants: Vec<(&str, Transformer)> = Vec::new();

    // Permute heads: rows of q1..v by head, columns of O.
    let head_perm: Vec<usize> = (0..heads * dh)
        .map(|r| ((r / dh + 1) % heads) * dh + r % dh)
        .collect();
    let mut e = edit(&a);
    for at in &mut e {
        for l in [&mut at.q1, &mut at.k1, &mut at.q2, &mut at.k2, &mut at.v] {
            l.weight = permute_rows(&l.weight, &head_perm);
            l.bias = permute_vec(&l.bias, &head_perm);
        }
        at.out.weight = permute_cols(&at.out.weight, &head_perm);
    }
    variants.push(("heads permuted", rebuild(&a, e).unwrap()));

    // Permute the value units within each head (rows of v, columns of O).
    let unit_perm: Vec<usize> = (0..heads * dh)
        .map(|r| (r / dh) * dh + (r % dh + 1) % dh)
        .collect();
    let mut e = edit(&a);
    for at in &mut e {
        at.v.weight = permute_rows(&at.v.weight, &unit_perm);
        at.v.bias = permute_vec(&at.v.bias, &unit_perm);
        at.out.weight = permute_cols(&at.out.weight, &unit_perm);
    }
    variants.push(("value units permuted within heads", rebuild(&a, e).unwrap()));

    // Swap (Q1, K1) with (Q2, K2).
    let mut e = edit(&a);
    for at in &mut e {
        std::mem::swap(&mut at.q1, &mut at.q2);
        std::mem::swap(&mut at.k1, &mut at.k2);
    }
    variants.push(("(Q1,K1) ↔ (Q2,K2)", rebuild(&a, e).unwrap()));

    // Rotate each rotary plane (i, i + d/2) of q1 and k1 by the same angle:
    // it commutes with the rotary embedding, so every score q1·k1 is unchanged.
    let mut e = edit(&a);
    for at in &mut e {
        for l in [&mut at.q1, &mut at.k1] {
            let w = l.weight.clone();
            let bias = l.bias.clone();
            for h in 0..heads {
                for i in 0..dh / 2 {
                    let (phi_c, phi_s) = ((0.3 + i as f64).cos(), (0.3 + i as f64).sin());
                    let (r1, r2) = (h * dh + i, h * dh + i + dh / 2);
                    for j in 0..w.ncols() {
                        l.weight[(r1, j)] = phi_c * w[(r1, j)] - phi_s * w[(r2, j)];
                        l.weight[(r2, j)] = phi_s * w[(r1, j)] + phi_c * w[(r2, j)];
                    }
                    if let (Some(nb), Some(ob)) = (l.bias.as_mut(), bias.as_ref()) {
                        nb[r1] = phi_c * ob[r1] - phi_s * ob[r2];
                        nb[r2] = phi_s * ob[r1] + phi_c * ob[r2];
                    }
                }
            }
        }
    }
    variants.push((
        "q1/k1 rotary planes rotated together",
        rebuild(&a, e).unwrap(),
    ));

    // Rescale q2 by α and k2 by 1/α.
    let mut e = edit(&a);
    for at in &mut e {
        at.q2.weight = Mat::from_fn(at.q2.weight.nrows(), at.q2.weight.ncols(), |i, j| {
            3.0 * at.q2.weight[(i, j)]
        });
        at.q2.bias = at
            .q2
            .bias
            .as_ref()
            .map(|v| v.iter().map(|x| 3.0 * x).collect());
        at.k2.weight = Mat::from_fn(at.k2.weight.nrows(), at.k2.weight.ncols(), |i, j| {
            at.k2.weight[(i, j)] / 3.0
        });
        at.k2.bias = at
            .k2
            .bias
            .as_ref()
            .map(|v| v.iter().map(|x| x / 3.0).collect());
    }
    variants.push(("q2·3, k2/3", rebuild(&a, e).unwrap()));

    // Permute MLP hidden units.
    let mut e = edit(&a);
    for at in &mut e {
        let m = at.mlp.as_mut().unwrap();
        let perm = [4, 2, 0, 1, 3];
        m.left = permute_rows(&m.left, &perm);
        m.right = permute_rows(&m.right, &perm);
        m.left_bias = permute_vec(&m.left_bias, &perm);
        m.right_bias = permute_vec(&m.right_bias, &perm);
        m.down = permute_cols(&m.down, &perm);
    }
    variants.push(("MLP hidden units permuted", rebuild(&a, e).unwrap()));

    let x = Mat::from_fn(3, 5, |i, j| ((i * 5 + j) as f64 * 0.37).sin());
    let y = a.forward(x.as_ref()).unwrap();
    for (what, t) in &variants {
        // Same function (forward pass) ...
        let yt = t.forward(x.as_ref()).unwrap();
        for i in 0..3 {
            for j in 0..5 {
                assert!(
                    (y[(i, j)] - yt[(i, j)]).abs() < 1e-10 * y[(i, j)].abs().max(1.0),
                    "{what}"
                );
            }
        }
        // ... so similarity 1.
        let sim = exact(&a, t, 3);
        assert!((sim - 1.0).abs() < 1e-10, "{what}: {sim}");
    }
}

#[test]
fn mismatched_architectures_are_refused() {
    let base = shape(false, 1.0, Mask::Causal, None, 1);
    let a = base.random_model(1).unwrap();
    let geometry = Arc::new(SequenceGeometry::new(&base, 3).unwrap());
    for (what, other) in [
        (
            "context",
            TransformerShape {
                context: 4,
                ..base.clone()
            },
        ),
        (
            "heads",
            TransformerShape {
                heads: 1,
                head_dim: 4,
                ..base.clone()
            },
        ),
        (
            "vocab",
            TransformerShape {
                vocab: 6,
                ..base.clone()
            },
        ),
    ] {
        let b = other.random_model(2).unwrap();
        let err = SequencePrepared::new(&b, geometry.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{err}");
        assert!(sequence_similarity(&a, &b, 3).is_err());
    }
    assert!(SequenceGeometry::new(&base, 4)
        .unwrap_err()
        .to_string()
        .contains("context"));
    let mut bad = edit(&a);
    bad[0].v.weight[(0, 0)] = f64::NAN;
    let err = rebuild(&a, bad).unwrap_err().to_string();
    assert!(
        err.contains("blocks.0.attn.v.weight") && err.contains("NaN"),
        "{err}"
    );
}

#[test]
fn inconsistent_biases_and_bad_rotary_bases_are_refused() {
    let s = shape(true, 0.5, Mask::Causal, Some((6, true, 0.7)), 1);
    let a = s.random_model(1).unwrap();
    let mut t = edit(&a);
    t[0].k1.bias = None;
    assert!(rebuild(&a, t).unwrap_err().to_string().contains("`k1`"));
    let blocks = a.blocks().to_vec();
    let err = Transformer::new(
        a.embedding().to_owned(),
        blocks,
        a.unembedding().to_owned(),
        a.context(),
        a.mask(),
        0.0,
    );
    assert!(err.unwrap_err().to_string().contains("rotary_base"));
}

#[test]
fn forward_from_the_residual_stream_skips_only_the_embedding() {
    let s = TransformerShape::benchmark(2);
    let t = s.random_model(5).unwrap();
    let x = Mat::from_fn(6, s.vocab, |i, j| ((i * 31 + j * 7) as f64 * 0.13).cos());
    let direct = t.forward(x.as_ref()).unwrap();
    let via_residual = t.forward_residual(t.embed(x.as_ref()).as_ref()).unwrap();
    assert_eq!((direct.nrows(), direct.ncols()), (6, s.vocab));
    for i in 0..6 {
        for j in 0..s.vocab {
            assert!((direct[(i, j)] - via_residual[(i, j)]).abs() < 1e-12);
        }
    }
    // Token-space inputs are not a residual stream: the error names both widths.
    let err = t.forward_residual(x.as_ref()).unwrap_err().to_string();
    assert!(
        err.contains("32") && err.contains(&s.vocab.to_string()),
        "{err}"
    );
    // Longer than the context: refused.
    let long = Mat::<f64>::zeros(s.context + 1, s.d_model);
    assert!(t.forward_residual(long.as_ref()).is_err());
}

#[test]
fn stacked_sequences_give_each_sequence_its_own_logits() {
    let s = TransformerShape::benchmark(2);
    let t = s.random_model(7).unwrap();
    let (sequences, n) = (5, 3);
    let x = Mat::from_fn(sequences * n, s.vocab, |i, j| {
        ((i * 17 + j * 5) as f64 * 0.21).sin()
    });
    let stacked = t.forward_stacked(x.as_ref(), n).unwrap();
    assert_eq!((stacked.nrows(), stacked.ncols()), (sequences * n, s.vocab));
    for k in 0..sequences {
        let alone = t.forward(x.as_ref().subrows(k * n, n)).unwrap();
        for i in 0..n {
            for j in 0..s.vocab {
                let (a, b) = (stacked[(k * n + i, j)], alone[(i, j)]);
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
    // Rows that do not stack whole sequences, or sequences past the context: refused.
    assert!(t.forward_stacked(x.as_ref(), 4).is_err());
    assert!(t.forward_stacked(x.as_ref().subrows(0, 0), n).is_err());
    let long = Mat::<f64>::zeros(2 * (s.context + 1), s.vocab);
    assert!(t.forward_stacked(long.as_ref(), s.context + 1).is_err());
}

/// The model family of the published checkpoints and beyond: per-group
/// biases, MLP-only blocks, logits narrower than the vocabulary.
fn family_shape(blocks: Vec<BlockShape>, outputs: usize) -> TransformerShape {
    TransformerShape {
        outputs,
        ..TransformerShape::causal(5, 4, (2, 2), 3, blocks)
    }
}

/// The published block: attention only, q/k biases, `x + 0.35·f(x)`.
fn paper_block() -> BlockShape {
    BlockShape::attention_only(AttentionBias::QK, Residual::Add(0.35))
}

/// Shapes that use every new degree of freedom, one at a time and together.
fn family_shapes() -> Vec<(&'static str, TransformerShape)> {
    let attention =
        |qk, v, out, residual| BlockShape::attention_only(AttentionBias { qk, v, out }, residual);
    vec![
        (
            "q/k biases only, additive (the paper's block)",
            family_shape(vec![paper_block()], 5),
        ),
        (
            "v and out biases only",
            family_shape(vec![attention(false, true, true, Residual::Lerp(0.6))], 5),
        ),
        (
            "MLP-only block, down bias only",
            family_shape(
                vec![BlockShape::mlp_only(
                    6,
                    [false, false, true],
                    Residual::Add(0.5),
                )],
                5,
            ),
        ),
        (
            "3 logits from a vocabulary of 5",
            family_shape(vec![attention(true, true, false, Residual::None)], 3),
        ),
        (
            "paper block then an MLP-only block, 4 logits",
            family_shape(
                vec![
                    paper_block(),
                    BlockShape::mlp_only(5, [true, false, false], Residual::Lerp(0.4)),
                ],
                4,
            ),
        ),
    ]
}

#[test]
fn the_model_family_equals_monte_carlo_and_the_full_matching_sum() {
    for (label, s) in family_shapes() {
        let a = s.random_model(4).unwrap();
        assert_eq!(a.shape(), s, "{label}: the shape round-trips");
        assert_eq!(a.outputs(), s.outputs);
        if a.polynomial_components() == 1 {
            check_against_monte_carlo(&s, label);
        }
        check_against_full_matchings(&s, label);
    }
}

#[test]
fn mlp_only_blocks_and_narrow_logits_forward_as_written() {
    // x ↦ E x, then y = x + s·(D((Lx + b_L) ⊙ (Rx + b_R)) + b_D), logits U y.
    let s = family_shape(
        vec![BlockShape::mlp_only(6, [true; 3], Residual::Add(0.5))],
        3,
    );
    let t = s.random_model(8).unwrap();
    let m = t.blocks()[0].mlp().unwrap();
    let x = Mat::from_fn(2, s.vocab, |i, j| ((i * 5 + j) as f64 * 0.37).sin());
    let logits = t.forward(x.as_ref()).unwrap();
    assert_eq!((logits.nrows(), logits.ncols()), (2, 3));
    let affine = |w: &Mat<f64>, b: Option<&Vec<f64>>, v: &[f64]| -> Vec<f64> {
        (0..w.nrows())
            .map(|r| {
                (0..w.ncols()).map(|c| w[(r, c)] * v[c]).sum::<f64>() + b.map_or(0.0, |b| b[r])
            })
            .collect()
    };
    for p in 0..2 {
        let row: Vec<f64> = (0..s.vocab).map(|j| x[(p, j)]).collect();
        let e = affine(&t.embedding().to_owned(), None, &row);
        let l = affine(&m.left, m.left_bias.as_ref(), &e);
        let r = affine(&m.right, m.right_bias.as_ref(), &e);
        let h: Vec<f64> = l.iter().zip(&r).map(|(l, r)| l * r).collect();
        let d = affine(&m.down, m.down_bias.as_ref(), &h);
        let y: Vec<f64> = e.iter().zip(&d).map(|(e, d)| e + 0.5 * d).collect();
        let expected = affine(&t.unembedding().to_owned(), None, &y);
        for (c, want) in expected.iter().enumerate() {
            let got = logits[(p, c)];
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
    }
}

/// The `Lerp(t)` model that computes `additive`'s logits exactly: with
/// `c_k` the factor by which its stream after component `k` exceeds the
/// additive model's (`c_0 = 1`, `c_k = (1 − t)·c_{k−1}`), every input
/// weight of component `k` is divided by `c_{k−1}` (biases kept), its output
/// map and bias multiplied by `c_k·s/t`, and the unembedding divided by the
/// last `c`.
fn lerp_equivalent(additive: &Transformer, t: f64) -> Transformer {
    let mut shape = additive.shape();
    let mut names_scales: Vec<(String, f64)> = Vec::new();
    let mut c = 1.0;
    for (i, b) in shape.blocks.iter_mut().enumerate() {
        let components = [
            (
                "attn",
                ["q1", "k1", "q2", "k2", "v"].as_slice(),
                "out",
                b.attention.as_mut().map(|a| &mut a.residual),
            ),
            (
                "mlp",
                ["left", "right"].as_slice(),
                "down",
                b.mlp.as_mut().map(|m| &mut m.residual),
            ),
        ];
        for (part, inputs, output, residual) in components {
            let Some(residual) = residual else { continue };
            let Residual::Add(s) = *residual else {
                panic!("additive residuals only")
            };
            *residual = Residual::Lerp(t);
            for p in inputs {
                names_scales.push((format!("blocks.{i}.{part}.{p}.weight"), 1.0 / c));
            }
            c *= 1.0 - t;
            for what in ["weight", "bias"] {
                names_scales.push((format!("blocks.{i}.{part}.{output}.{what}"), c * s / t));
            }
        }
    }
    names_scales.push(("unembed.weight".into(), 1.0 / c));
    let values = shape
        .parameter_specs()
        .iter()
        .zip(additive.parameters())
        .map(|(spec, v)| {
            let scale = names_scales
                .iter()
                .find(|(n, _)| *n == spec.name)
                .map_or(1.0, |(_, s)| *s);
            v.into_iter().map(|x| x * scale).collect()
        })
        .collect();
    Transformer::from_parameters(&shape, values).unwrap()
}

#[test]
fn additive_and_rescaled_lerp_models_give_identical_cosines() {
    let with_mlp = BlockShape::attention_only(AttentionBias::all(true), Residual::Add(0.35))
        .with_mlp(4, [true, false, true], Residual::Add(0.5));
    for blocks in [vec![paper_block()], vec![paper_block(), with_mlp]] {
        let s = family_shape(blocks, 5);
        let a = s.random_model(1).unwrap();
        let b = perturbed(&a, 0.3, 2);
        let (la, lb) = (lerp_equivalent(&a, 0.3), lerp_equivalent(&b, 0.3));
        let x = Mat::from_fn(3, s.vocab, |i, j| ((i * 7 + j * 3) as f64 * 0.29).cos());
        let (ya, yl) = (
            a.forward(x.as_ref()).unwrap(),
            la.forward(x.as_ref()).unwrap(),
        );
        for i in 0..3 {
            for j in 0..s.outputs {
                assert!((ya[(i, j)] - yl[(i, j)]).abs() <= 1e-12 * ya[(i, j)].abs().max(1.0));
            }
        }
        let (add, _) = sequence_similarity(&a, &b, 3).unwrap();
        let (lerp, _) = sequence_similarity(&la, &lb, 3).unwrap();
        assert!(
            (add.total - lerp.total).abs() < 1e-12,
            "{} vs {}",
            add.total,
            lerp.total
        );
        for (x, y) in add.per_output.iter().zip(&lerp.per_output) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }
}

#[test]
fn empty_blocks_and_mixed_qk_biases_are_refused() {
    let empty = family_shape(
        vec![BlockShape {
            attention: None,
            mlp: None,
        }],
        5,
    );
    assert!(empty
        .validate()
        .unwrap_err()
        .to_string()
        .contains("neither an attention nor an MLP"));
    let no_hidden = family_shape(vec![BlockShape::mlp_only(0, [false; 3], Residual::None)], 5);
    assert!(no_hidden
        .validate()
        .unwrap_err()
        .to_string()
        .contains("hidden unit"));
    let no_logits = family_shape(shape(false, 1.0, Mask::Causal, None, 1).blocks, 0);
    assert!(no_logits.validate().is_err());
    let s = shape(true, 0.5, Mask::Causal, Some((6, true, 0.7)), 1);
    let a = s.random_model(1).unwrap();
    let mut t = edit(&a);
    t[0].q2.bias = None;
    assert!(rebuild(&a, t).unwrap_err().to_string().contains("`q2`"));
    // Biases per group: v, out and the MLP's maps may differ from q/k.
    let mut t = edit(&a);
    t[0].v.bias = None;
    t[0].out.bias = None;
    t[0].mlp.as_mut().unwrap().down_bias = None;
    let rebuilt = rebuild(&a, t).unwrap();
    let b = &rebuilt.shape().blocks[0];
    assert_eq!(
        b.attention.unwrap().bias,
        AttentionBias {
            qk: true,
            v: false,
            out: false
        }
    );
    assert_eq!(b.mlp.unwrap().bias, [true, true, false]);
}
