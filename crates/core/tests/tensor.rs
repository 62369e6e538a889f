//! Tensor similarity (MATH.md §2) against brute force, and the properties of MATH.md §5.

mod common;

use common::*;
use faer::{Mat, Par};
use tensim_core::similarity::{difference_similarity, inner_products, similarity};
use tensim_core::symmetry::{permute_hidden, rescale_hidden, swap_left_right};
use tensim_core::{tensor_similarity, weight_cosine, BilinearForm, Model, TensorPrepared};

fn prep(m: &Model) -> TensorPrepared<f64> {
    TensorPrepared::new(m).unwrap()
}

#[test]
fn self_similarity_is_one() {
    for (name, layers) in one_bilinear_architectures() {
        let m = model(layers, 7);
        let s = tensor_similarity(&m, &m).unwrap();
        assert_close(s.total, 1.0, 1e-12, name);
        for (c, v) in s.per_output.iter().enumerate() {
            assert_close(*v, 1.0, 1e-12, &format!("{name} class {c}"));
        }
    }
}

#[test]
fn symmetric_bit_exact() {
    for (name, layers) in one_bilinear_architectures() {
        let (a, b) = model_pair(layers, (1, 2));
        let ab = tensor_similarity(&a, &b).unwrap();
        let ba = tensor_similarity(&b, &a).unwrap();
        assert_eq!(ab.total.to_bits(), ba.total.to_bits(), "{name}");
        for (x, y) in ab.per_output.iter().zip(&ba.per_output) {
            assert_eq!(x.to_bits(), y.to_bits(), "{name}");
        }
    }
}

#[test]
fn inner_product_equals_brute_force_per_class_and_total() {
    for pair in probed_pairs((11, 12)) {
        let found = inner_products(&prep(&pair.a), &prep(&pair.b), Par::Seq).unwrap();
        let sim = tensor_similarity(&pair.a, &pair.b).unwrap();
        let [ab, aa, bb] = pair.assert_matches_brute_force(&found, sim.total, brute_tensor_inner);
        // Slices sum to the total, and each slice's cosine agrees with brute force.
        let name = pair.name;
        assert_close(found.iter().sum::<f64>(), ab.iter().sum(), 1e-10, name);
        for c in 0..ab.len() {
            let e = cosine(ab[c], aa[c], bb[c]);
            assert_close(
                sim.per_output[c],
                e,
                1e-10,
                &format!("{name}: class {c} cosine"),
            );
        }
    }
}

#[test]
fn materialised_form_matches_probe_and_ignores_antisymmetric_parts() {
    let a = model(vec![linear(4, 3, true), bilinear(3, 5, 3, true, 0.4)], 3);
    let folded = BilinearForm::fold(&a).unwrap().interaction_matrices();
    let probed = probe_quadratic(&a);
    for (f, p) in folded.iter().zip(&probed) {
        for j in 0..f.ncols() {
            for i in 0..f.nrows() {
                assert_close(f[(i, j)], p[(i, j)], 1e-12, "materialised entry");
            }
        }
    }
    // An antisymmetric part changes the raw tensor but not what the form computes.
    let k = Mat::from_fn(5, 5, |i, j| (i as f64 - j as f64) * 0.3);
    let skewed: Vec<Mat<f64>> = folded.iter().map(|b| b + &k).collect();
    let sym =
        |m: &Mat<f64>| Mat::from_fn(m.nrows(), m.ncols(), |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let with_skew: Vec<Mat<f64>> = skewed.iter().map(sym).collect();
    let raw_changed = frobenius(&skewed[0], &skewed[0]) - frobenius(&folded[0], &folded[0]);
    assert!(raw_changed.abs() > 1e-3, "the raw tensor does change");
    let x = brute_tensor_inner(&with_skew, &folded);
    let y = brute_tensor_inner(&folded, &folded);
    for (u, v) in x.iter().zip(&y) {
        assert_close(*u, *v, 1e-12, "antisymmetric part is invisible");
    }
}

#[test]
fn direction_slices_equal_brute_force() {
    let (a, b) = model_pair(
        vec![linear(5, 4, true), bilinear(4, 6, 3, true, 1.0)],
        (21, 22),
    );
    let u = Mat::from_fn(2, 3, |k, c| [[0.3, -1.2, 0.7], [1.0, 0.5, 2.0]][k][c]);
    let pa = TensorPrepared::<f64>::along(&a, u.as_ref()).unwrap();
    let pb = TensorPrepared::<f64>::along(&b, u.as_ref()).unwrap();
    let found = inner_products(&pa, &pb, Par::Seq).unwrap();
    let project = |t: &[Mat<f64>], k: usize| -> Mat<f64> {
        let mut m = Mat::zeros(t[0].nrows(), t[0].ncols());
        for (c, tc) in t.iter().enumerate() {
            m += tc * faer::Scale(u[(k, c)]);
        }
        m
    };
    let (ta, tb) = (probe_quadratic(&a), probe_quadratic(&b));
    for k in 0..2 {
        let e = frobenius(&project(&ta, k), &project(&tb, k));
        assert_close(found[k], e, 1e-10, &format!("direction {k}"));
    }
}

#[test]
fn difference_similarity_equals_brute_force() {
    for (name, layers) in one_bilinear_architectures() {
        let ms: Vec<Model> = (0..4).map(|s| model(layers.clone(), 100 + s)).collect();
        let ps: Vec<TensorPrepared<f64>> = ms.iter().map(prep).collect();
        let found = difference_similarity(&ps[0], &ps[1], &ps[2], &ps[3], Par::Seq).unwrap();
        let t: Vec<Vec<Mat<f64>>> = ms.iter().map(probe_quadratic).collect();
        let diff = |x: &[Mat<f64>], y: &[Mat<f64>]| -> Vec<Mat<f64>> {
            x.iter().zip(y).map(|(p, q)| q - p).collect()
        };
        let (da, db) = (diff(&t[0], &t[1]), diff(&t[2], &t[3]));
        let (ab, aa, bb) = (
            brute_tensor_inner(&da, &db),
            brute_tensor_inner(&da, &da),
            brute_tensor_inner(&db, &db),
        );
        assert_close(
            found.total,
            cosine(ab.iter().sum(), aa.iter().sum(), bb.iter().sum()),
            1e-9,
            &format!("{name}: update similarity"),
        );
        for c in 0..ab.len() {
            assert_close(
                found.per_output[c],
                cosine(ab[c], aa[c], bb[c]),
                1e-9,
                &format!("{name}: class {c}"),
            );
        }
    }
}

#[test]
fn invariant_to_hidden_symmetries_while_matrix_cosine_is_not() {
    let a = model(embed_blocks_head(6, 5, &[(8, 0.7)], 3, true), 5);
    let variants = [
        (
            "permutation",
            permute_hidden(&a, 1, &random_permutation(8, 9)).unwrap(),
        ),
        (
            "rescaling",
            rescale_hidden(&a, 1, &random_scales(8, 10)).unwrap(),
        ),
        ("L/R swap", swap_left_right(&a, 1).unwrap()),
    ];
    for (name, v) in &variants {
        let s = tensor_similarity(&a, v).unwrap();
        assert_close(s.total, 1.0, 1e-10, name);
        for x in &s.per_output {
            assert_close(*x, 1.0, 1e-10, name);
        }
        let w = weight_cosine(&a, v).unwrap();
        assert!(
            w.all < 0.99,
            "{name}: matrix cosine {} should drop below 1",
            w.all
        );
        assert!(
            w.per_layer[1] < 0.99,
            "{name}: the changed layer's cosine drops"
        );
        assert_close(w.per_layer[0], 1.0, 1e-12, "untouched layer");
    }
}

#[test]
fn mismatched_outputs_are_refused() {
    let a = classifier(4, 3, 2, 1);
    let b = classifier(4, 3, 5, 1);
    let err = tensor_similarity(&a, &b).unwrap_err().to_string();
    assert!(err.contains("output dimension"), "{err}");
    let deep = model(
        vec![bilinear(4, 3, 4, false, 1.0), bilinear(4, 3, 2, false, 1.0)],
        1,
    );
    let err = tensor_similarity(&deep, &deep).unwrap_err().to_string();
    assert!(err.contains("gaussian"), "{err}");
}

#[test]
fn f32_path_survives_huge_weights() {
    // 784 → 64 → 10 classifier with weights scaled by 1e5: ⟨A,A⟩ is far beyond f32's range.
    let base = classifier(784, 64, 10, 3);
    let scaled = scale_all(&base, 1e5);
    let p64 = TensorPrepared::<f64>::new(&scaled).unwrap();
    let trace: f64 = inner_products(&p64, &p64, Par::Seq).unwrap().iter().sum();
    assert!(trace > 1e25, "the test needs huge traces, got {trace:e}");
    let p32 = TensorPrepared::<f32>::new(&scaled).unwrap();
    let s = similarity(&p32, &p32, Par::Seq).unwrap();
    assert_close(s.total, 1.0, 1e-6, "f32 self-similarity");
    let other = classifier(784, 64, 10, 4);
    let o32 = TensorPrepared::<f32>::new(&other).unwrap();
    let o64 = TensorPrepared::<f64>::new(&other).unwrap();
    let s32 = similarity(&p32, &o32, Par::Seq).unwrap().total;
    let s64 = similarity(&p64, &o64, Par::Seq).unwrap().total;
    assert!((s32 - s64).abs() < 1e-4, "f32 {s32} vs f64 {s64}");
}
