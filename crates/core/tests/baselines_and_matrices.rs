//! Baselines (MATH.md §4) and pairwise matrices over many models.

mod common;

use common::*;
use faer::{Mat, Par};
use tensim_core::cka::{linear_cka, CkaPrepared};
use tensim_core::output_cosine::output_cosine;
use tensim_core::pairwise::{pairwise_values, GramMatrices};
use tensim_core::similarity::{difference_similarity, similarity};
use tensim_core::{GaussianPrepared, Model, TensorPrepared};

fn inputs(n: usize, d: usize, seed: u64) -> Mat<f64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Mat::from_fn(n, d, |_, _| rng.random_range(-1.0..1.0))
}

#[test]
fn linear_cka_properties() {
    let x = inputs(50, 4, 1);
    assert_close(
        linear_cka(x.as_ref(), x.as_ref()).unwrap(),
        1.0,
        1e-12,
        "self CKA",
    );
    // Invariant to an orthogonal map and isotropic scaling of the features.
    let (c, s) = (0.6f64, 0.8f64);
    let q = Mat::from_fn(4, 4, |i, j| match (i, j) {
        (0, 0) | (1, 1) => c,
        (0, 1) => -s,
        (1, 0) => s,
        (i, j) if i == j => 1.0,
        _ => 0.0,
    });
    let y = &x * &q * faer::Scale(3.5);
    assert_close(
        linear_cka(x.as_ref(), y.as_ref()).unwrap(),
        1.0,
        1e-12,
        "rotated CKA",
    );
    // Brute force on a small case: ‖YᵀX‖² / (‖XᵀX‖ ‖YᵀY‖) after centring.
    let z = inputs(50, 3, 2);
    let centre = |m: &Mat<f64>| {
        let mut m = m.clone();
        for j in 0..m.ncols() {
            let mean: f64 = (0..m.nrows()).map(|i| m[(i, j)]).sum::<f64>() / m.nrows() as f64;
            for i in 0..m.nrows() {
                m[(i, j)] -= mean;
            }
        }
        m
    };
    let (xc, zc) = (centre(&x), centre(&z));
    let f2 = |m: Mat<f64>| m.squared_norm_l2();
    let expected = f2(zc.transpose() * &xc)
        / (f2(xc.transpose() * &xc).sqrt() * f2(zc.transpose() * &zc).sqrt());
    assert_close(
        linear_cka(x.as_ref(), z.as_ref()).unwrap(),
        expected,
        1e-12,
        "CKA brute force",
    );
}

#[test]
fn output_cosine_is_the_mean_per_sample_cosine() {
    let a = classifier(5, 4, 3, 1);
    let b = classifier(5, 4, 3, 2);
    let x = inputs(20, 5, 3);
    let (ya, yb) = (
        a.forward(x.as_ref()).unwrap(),
        b.forward(x.as_ref()).unwrap(),
    );
    let mut expected = 0.0;
    for i in 0..20 {
        let row = |y: &Mat<f64>| (0..3).map(|j| y[(i, j)]).collect::<Vec<_>>();
        let (p, q) = (row(&ya), row(&yb));
        let dot: f64 = p.iter().zip(&q).map(|(u, v)| u * v).sum();
        let n = |v: &Vec<f64>| v.iter().map(|u| u * u).sum::<f64>().sqrt();
        expected += dot / (n(&p) * n(&q)) / 20.0;
    }
    assert_close(
        output_cosine(&a, &b, x.as_ref()).unwrap(),
        expected,
        1e-12,
        "output cosine",
    );
    assert_close(
        output_cosine(&a, &a, x.as_ref()).unwrap(),
        1.0,
        1e-12,
        "self output cosine",
    );
}

#[test]
fn matrices_equal_pairwise_computation_and_are_symmetric() {
    let layers = vec![linear(6, 4, true), bilinear(4, 5, 3, true, 1.0)];
    let models: Vec<Model> = (0..6).map(|s| model(layers.clone(), 200 + s)).collect();
    let prepared: Vec<TensorPrepared<f64>> = models
        .iter()
        .map(|m| TensorPrepared::new(m).unwrap())
        .collect();
    let count = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let gram = GramMatrices::compute(&prepared, &tick).unwrap();
    assert_eq!(count.into_inner(), 21, "one tick per pair i <= j");
    let total = gram.cosine_total().unwrap();
    let class1 = gram.cosine_output(1).unwrap();
    for i in 0..6 {
        assert_close(total[(i, i)], 1.0, 1e-12, "diagonal");
        for j in 0..6 {
            assert_eq!(total[(i, j)].to_bits(), total[(j, i)].to_bits());
            let s = similarity(&prepared[i], &prepared[j], Par::Seq).unwrap();
            assert_close(total[(i, j)], s.total, 1e-13, "matrix entry = pair");
            assert_close(class1[(i, j)], s.per_output[1], 1e-13, "slice entry = pair");
        }
    }
    // Update similarity from the Gram matrix equals the direct four-product form.
    let updates = [(0, 1), (1, 2), (2, 3), (3, 5)];
    let upd = gram.update_similarity(&updates, &[0, 1, 2]).unwrap();
    for (u, &(f, t)) in updates.iter().enumerate() {
        for (v, &(g, s)) in updates.iter().enumerate() {
            let d = difference_similarity(
                &prepared[f],
                &prepared[t],
                &prepared[g],
                &prepared[s],
                Par::Seq,
            )
            .unwrap();
            assert_close(upd[(u, v)], d.total, 1e-10, "update similarity");
        }
    }
}

#[test]
fn gaussian_matrix_and_generic_pairs() {
    let layers = embed_blocks_head(5, 4, &[(6, 0.5)], 3, false);
    let models: Vec<Model> = (0..4).map(|s| model(layers.clone(), 300 + s)).collect();
    let prepared: Vec<GaussianPrepared<f32>> = models
        .iter()
        .map(|m| GaussianPrepared::new(m).unwrap())
        .collect();
    let gram = GramMatrices::compute(&prepared, &|| {}).unwrap();
    let m = gram.cosine_total().unwrap();
    for i in 0..4 {
        for j in 0..4 {
            let (s, _) = tensim_core::gaussian_similarity(&models[i], &models[j]).unwrap();
            assert!((m[(i, j)] - s.total).abs() < 1e-5, "f32 matrix vs f64 pair");
        }
    }
    // Any pair function: CKA of logits on shared inputs.
    let x = inputs(64, 5, 9);
    let acts: Vec<CkaPrepared> = models
        .iter()
        .map(|m| CkaPrepared::of_outputs(m, x.as_ref()).unwrap())
        .collect();
    let cka = pairwise_values(&acts, |a, b| Ok(vec![a.cka(b, Par::Seq)?]), &|| {}).unwrap();
    assert_close(cka[0][(2, 2)], 1.0, 1e-12, "CKA diagonal");
}

#[test]
fn a_failing_pair_is_named() {
    let ok = classifier(3, 2, 2, 1);
    let zero = Model::from_parameters(
        ok.architecture(),
        ok.parameters().iter().map(|v| vec![0.0; v.len()]).collect(),
    )
    .unwrap();
    let prepared: Vec<TensorPrepared<f64>> = [ok, zero]
        .iter()
        .map(|m| TensorPrepared::new(m).unwrap())
        .collect();
    let gram = GramMatrices::compute(&prepared, &|| {}).unwrap();
    let err = gram.cosine_total().unwrap_err().to_string();
    assert!(
        err.contains("pair (0, 1)") && err.contains("zero norm"),
        "{err}"
    );
}

#[test]
fn zero_widths_are_refused_by_name() {
    use tensim_core::{Architecture, Error, LayerShape};
    for (shape, what) in [
        (LayerShape::bilinear(4, 0, 3), "hidden"),
        (LayerShape::bilinear(4, 5, 0), "output"),
        (LayerShape::bilinear(0, 5, 3), "input"),
    ] {
        let err = Architecture {
            layers: vec![shape],
        }
        .random_model(1)
        .unwrap_err();
        assert_eq!(err, Error::ZeroWidth { layer: 0, what });
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
    // Built from matrices too: a head with no rows is a model with no outputs.
    let err = Model::bilinear_classifier(Mat::zeros(3, 4), Mat::zeros(3, 4), Mat::zeros(0, 3))
        .unwrap_err();
    assert_eq!(
        err,
        Error::ZeroWidth {
            layer: 0,
            what: "output"
        }
    );
}

#[test]
fn degenerate_inputs_are_errors_that_say_why() {
    use tensim_core::weight_cosine::weight_cosine;
    use tensim_core::{Architecture, Error, LayerShape};
    let arch = Architecture {
        layers: vec![LayerShape::bilinear(4, 5, 3)],
    };
    let (a, b) = (arch.random_model(1).unwrap(), arch.random_model(2).unwrap());
    // All-zero inputs to models without biases: every output is 0, no direction.
    let zeros = Mat::<f64>::zeros(6, 4);
    let err = output_cosine(&a, &a, zeros.as_ref()).unwrap_err();
    assert!(matches!(err, Error::ZeroNorm { .. }), "{err}");
    assert!(err.to_string().contains("input row 0"), "{err}");
    // Identical input rows: the outputs do not vary, CKA is undefined.
    let same = Mat::from_fn(6, 4, |_, j| 0.3 + j as f64 * 0.1);
    let err = linear_cka(
        a.forward(same.as_ref()).unwrap().as_ref(),
        b.forward(same.as_ref()).unwrap().as_ref(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::ZeroNorm { .. }), "{err}");
    // Huge and tiny weights: matrix cosine is scale-free and computed exactly.
    let scaled = |m: &Model, s: f64| {
        let p: Vec<Vec<f64>> = m
            .parameters()
            .into_iter()
            .map(|t| t.iter().map(|v| v * s).collect())
            .collect();
        tensim_core::weight_cosine::parameter_cosine(&p, &b.parameters()).unwrap()
    };
    let plain = weight_cosine(&a, &b).unwrap().all;
    for s in [1e200, 1e-200, 0.75] {
        let c = scaled(&a, s);
        assert!((c - plain).abs() < 1e-15, "scale {s}: {c} vs {plain}");
    }
    assert_eq!(scaled(&a, 1.0), plain, "exact where nothing overflows");
}
