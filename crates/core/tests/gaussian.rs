//! Gaussian functional similarity (MATH.md §3) against brute force (Isserlis
//! on probed tensors) and Monte-Carlo, plus the properties of MATH.md §5.

mod common;

use common::*;
use faer::Par;
use tensim_core::monte_carlo::monte_carlo_similarity;
use tensim_core::similarity::{inner_products, similarity};
use tensim_core::symmetry::{permute_hidden, rescale_hidden, swap_left_right};
use tensim_core::{
    gaussian_similarity, tensor_similarity, Centring, Exactness, GaussianPrepared, Layer,
    LayerShape, Mat, Model, Residual,
};

fn prep(m: &Model) -> GaussianPrepared<f64> {
    GaussianPrepared::new(m).unwrap()
}

#[test]
fn one_layer_equals_isserlis_brute_force() {
    for pair in probed_pairs((31, 32)) {
        let found = inner_products(&prep(&pair.a), &prep(&pair.b), Par::Seq).unwrap();
        let (sim, exact) = gaussian_similarity(&pair.a, &pair.b).unwrap();
        assert_eq!(exact, Exactness::Exact, "{}", pair.name);
        pair.assert_matches_brute_force(&found, sim.total, brute_gaussian_inner);
    }
}

#[test]
fn self_similarity_one_and_symmetric_bit_exact() {
    let mut archs = one_bilinear_architectures();
    archs.push((
        "two layers",
        vec![
            linear(5, 4, true),
            bilinear(4, 6, 4, true, 0.5),
            bilinear(4, 5, 4, true, 0.5),
            linear(4, 3, false),
        ],
    ));
    for (name, layers) in archs {
        let (a, b) = model_pair(layers, (41, 42));
        let (s, _) = gaussian_similarity(&a, &a).unwrap();
        assert_close(s.total, 1.0, 1e-12, name);
        let (ab, _) = gaussian_similarity(&a, &b).unwrap();
        let (ba, _) = gaussian_similarity(&b, &a).unwrap();
        assert_eq!(ab.total.to_bits(), ba.total.to_bits(), "{name}");
        assert_eq!(ab.per_output, ba.per_output, "{name}");
    }
}

#[test]
fn centred_moments_equal_tensor_similarity_without_bias() {
    for layers in [
        vec![bilinear(6, 5, 3, false, 1.0)],
        embed_blocks_head(7, 4, &[(6, 1.0)], 3, false),
    ] {
        let (a, b) = model_pair(layers, (51, 52));
        let pa = GaussianPrepared::<f64>::with_centring(&a, Centring::Centred).unwrap();
        let pb = GaussianPrepared::<f64>::with_centring(&b, Centring::Centred).unwrap();
        let centred = similarity(&pa, &pb, Par::Seq).unwrap();
        let tensor = tensor_similarity(&a, &b).unwrap();
        assert_close(
            centred.total,
            tensor.total,
            1e-10,
            "centred gaussian = tensor",
        );
        assert_each_close(&centred.per_output, &tensor.per_output, 1e-10, |_| {
            "per class".into()
        });
    }
}

#[test]
fn one_layer_matches_monte_carlo_within_four_standard_errors() {
    let cases = [
        ("no bias, no residual", vec![bilinear(6, 5, 3, false, 1.0)]),
        ("bias", vec![bilinear(6, 5, 3, true, 1.0)]),
        ("residual", vec![bilinear(5, 7, 5, false, 0.5)]),
        (
            "bias + residual + embed + head",
            embed_blocks_head(6, 5, &[(7, 0.3)], 3, true),
        ),
        (
            "bias + additive residual + embed + head",
            vec![
                linear(6, 5, true),
                additive(5, 7, true, 0.35),
                linear(5, 3, true),
            ],
        ),
    ];
    for (name, layers) in cases {
        let (a, b) = model_pair(layers, (61, 62));
        for centring in [Centring::Uncentred, Centring::Centred] {
            let pa = GaussianPrepared::<f64>::with_centring(&a, centring).unwrap();
            let pb = GaussianPrepared::<f64>::with_centring(&b, centring).unwrap();
            let exact = similarity(&pa, &pb, Par::Seq).unwrap().total;
            let mc = monte_carlo_similarity(&a, &b, 200_000, 7, centring).unwrap();
            assert_within_four_standard_errors(exact, &mc, &format!("{name} {centring:?}"));
        }
    }
}

#[test]
fn two_layers_gaussian_closure_error_is_small() {
    // Two polynomial layers: moment propagation treats the hidden activations
    // as Gaussian. Measure how far that is from the truth.
    let layers = embed_blocks_head(6, 5, &[(6, 0.5), (6, 0.5)], 3, false);
    let (a, b) = model_pair(layers, (71, 72));
    let (sim, exactness) = gaussian_similarity(&a, &b).unwrap();
    assert_eq!(
        exactness,
        Exactness::GaussianClosure {
            polynomial_layers: 2
        }
    );
    let mc = monte_carlo_similarity(&a, &b, 400_000, 9, Centring::Uncentred).unwrap();
    let error = (sim.total - mc.value).abs();
    println!(
        "two bilinear layers (residual 0.5): closure {:.5}, Monte-Carlo {:.5} ± {:.5}, closure error {error:.5}",
        sim.total, mc.value, mc.std_error
    );
    assert!(
        error < 0.05,
        "closure error {error} is larger than expected"
    );
}

#[test]
fn invariant_to_hidden_symmetries_in_deep_models() {
    let layers = embed_blocks_head(6, 5, &[(8, 0.7), (4, 0.7)], 3, true);
    let a = model(layers, 81);
    for layer in [1, 2] {
        let h = if layer == 1 { 8 } else { 4 };
        let variants = [
            permute_hidden(&a, layer, &random_permutation(h, 3)).unwrap(),
            rescale_hidden(&a, layer, &random_scales(h, 4)).unwrap(),
            swap_left_right(&a, layer).unwrap(),
        ];
        for v in &variants {
            let (s, _) = gaussian_similarity(&a, v).unwrap();
            assert_close(s.total, 1.0, 1e-10, "deep invariance");
            for x in &s.per_output {
                assert_close(*x, 1.0, 1e-10, "deep invariance per class");
            }
        }
    }
}

#[test]
fn f32_moments_survive_traces_beyond_1e25() {
    let layers = vec![
        linear(20, 16, true),
        bilinear(16, 24, 16, true, 0.5),
        bilinear(16, 24, 10, true, 1.0),
    ];
    let (base, other) = model_pair(layers, (91, 92));
    let scaled = scale_all(&base, 30.0);
    let p64 = prep(&scaled);
    let trace: f64 = inner_products(&p64, &p64, Par::Seq).unwrap().iter().sum();
    assert!(trace > 1e25, "the test needs huge traces, got {trace:e}");
    let p32 = GaussianPrepared::<f32>::new(&scaled).unwrap();
    let s = similarity(&p32, &p32, Par::Seq).unwrap();
    assert_close(s.total, 1.0, 1e-6, "f32 self-similarity");
    let s32 = similarity(
        &p32,
        &GaussianPrepared::<f32>::new(&other).unwrap(),
        Par::Seq,
    )
    .unwrap()
    .total;
    let s64 = similarity(&p64, &prep(&other), Par::Seq).unwrap().total;
    assert!((s32 - s64).abs() < 1e-4, "f32 {s32} vs f64 {s64}");
}

#[test]
fn different_layer_structure_is_refused() {
    let a = model(vec![bilinear(4, 3, 2, false, 1.0)], 1);
    let b = model(vec![linear(4, 4, false), bilinear(4, 3, 2, false, 1.0)], 1);
    let err = gaussian_similarity(&a, &b).unwrap_err().to_string();
    assert!(err.contains("layer kinds"), "{err}");
}

#[test]
fn absolute_inner_products_track_scale_through_deep_models() {
    // Scaling the head by c scales E[f_a f_b] by c: the log-scale bookkeeping
    // through two bilinear layers and per-layer normalisation must keep that.
    let layers = embed_blocks_head(5, 4, &[(6, 0.5), (5, 1.0)], 3, true);
    let (a, b) = model_pair(layers, (101, 102));
    let scaled = |m: &Model, c: f64| {
        let mut p = m.parameters();
        let n = p.len();
        for v in &mut p[n - 2..] {
            v.iter_mut().for_each(|x| *x *= c);
        }
        Model::from_parameters(m.architecture(), p).unwrap()
    };
    let base = inner_products(&prep(&a), &prep(&b), Par::Seq).unwrap();
    for c in [1e-6, 37.0, 1e8] {
        let big = inner_products(&prep(&scaled(&a, c)), &prep(&b), Par::Seq).unwrap();
        for (x, y) in big.iter().zip(&base) {
            assert_close(*x / c, *y, 1e-9, &format!("head scaled by {c}"));
        }
    }
    // And update similarity of the Gaussian metric: an update compared with twice itself is 1.
    let a1 = scaled(&a, 3.0);
    let a2 = scaled(&a, 5.0);
    let (p0, p1, p2) = (prep(&a), prep(&a1), prep(&a2));
    let d = tensim_core::difference_similarity(&p0, &p1, &p1, &p2, Par::Seq).unwrap();
    assert_close(d.total, 1.0, 1e-9, "parallel updates");
}

/// `bilinear(…)` with an additive residual `x + s·f(x)`.
fn additive(width: usize, hidden: usize, bias: bool, s: f64) -> LayerShape {
    LayerShape::Bilinear {
        input: width,
        hidden,
        output: width,
        left_bias: bias,
        right_bias: bias,
        down_bias: bias,
        residual: Residual::Add(s),
    }
}

#[test]
fn additive_residual_is_the_input_plus_the_scaled_block() {
    let with = model(vec![additive(5, 7, true, 0.35)], 3);
    let mut layers = with.layers().to_vec();
    if let Layer::Bilinear(b) = &mut layers[0] {
        b.residual = Residual::None;
    }
    let without = Model::new(layers).unwrap();
    let x = Mat::from_fn(4, 5, |i, j| ((i * 5 + j) as f64 * 0.61).sin());
    let (y, f) = (
        with.forward(x.as_ref()).unwrap(),
        without.forward(x.as_ref()).unwrap(),
    );
    for i in 0..4 {
        for j in 0..5 {
            assert!((y[(i, j)] - (x[(i, j)] + 0.35 * f[(i, j)])).abs() < 1e-14);
        }
    }
}

/// A sample count the estimate cannot hold is a typed error before any
/// sample is drawn (1e12 samples used to abort allocating 24 TB).
#[test]
fn sample_counts_outside_two_to_the_maximum_are_refused() {
    let (a, b) = model_pair(vec![bilinear(6, 5, 3, false, 1.0)], (61, 62));
    let err =
        monte_carlo_similarity(&a, &b, 1_000_000_000_000, 7, Centring::Uncentred).unwrap_err();
    assert!(
        matches!(
            err,
            tensim_core::Error::TooManySamples {
                samples: 1_000_000_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--samples"), "{err}");
    let err = monte_carlo_similarity(&a, &b, 1, 7, Centring::Uncentred).unwrap_err();
    assert!(
        matches!(err, tensim_core::Error::TooFewSamples { samples: 1 }),
        "{err}"
    );
}
