//! Shared fixtures: tiny random models and brute-force references computed
//! from the forward pass alone (no code shared with the metrics under test).
#![allow(dead_code)]

use faer::Mat;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tensim_core::Residual;
use tensim_core::{Architecture, LayerShape, Model};

pub fn linear(input: usize, output: usize, bias: bool) -> LayerShape {
    LayerShape::Linear {
        input,
        output,
        bias,
    }
}

pub fn bilinear(
    input: usize,
    hidden: usize,
    output: usize,
    bias: bool,
    residual_scale: f64,
) -> LayerShape {
    LayerShape::Bilinear {
        input,
        hidden,
        output,
        left_bias: bias,
        right_bias: bias,
        down_bias: bias,
        residual: Residual::from_lerp_scale(residual_scale),
    }
}

pub fn model(layers: Vec<LayerShape>, seed: u64) -> Model {
    Architecture { layers }.random_model(seed).unwrap()
}

/// The single-layer classifier `P((Lx)⊙(Rx))`.
pub fn classifier(d: usize, h: usize, o: usize, seed: u64) -> Model {
    model(vec![bilinear(d, h, o, false, 1.0)], seed)
}

/// Every tiny architecture with one bilinear layer the tests sweep over:
/// plain, biased, residual, embed + head with biases.
pub fn one_bilinear_architectures() -> Vec<(&'static str, Vec<LayerShape>)> {
    vec![
        ("plain", vec![bilinear(5, 4, 3, false, 1.0)]),
        ("bias", vec![bilinear(5, 4, 3, true, 1.0)]),
        ("residual", vec![bilinear(4, 6, 4, false, 0.6)]),
        ("residual+bias", vec![bilinear(4, 6, 4, true, 0.35)]),
        (
            "embed+mlp+head",
            vec![
                linear(5, 4, true),
                bilinear(4, 3, 4, true, 0.5),
                linear(4, 3, true),
            ],
        ),
        (
            "embed+bilinear",
            vec![linear(6, 3, false), bilinear(3, 5, 2, false, 1.0)],
        ),
        ("linear only", vec![linear(4, 3, true)]),
    ]
}

pub fn random_permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(&mut StdRng::seed_from_u64(seed));
    p
}

pub fn random_scales(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let a: f64 = rng.random_range(0.2..5.0);
            if rng.random_bool(0.5) {
                a
            } else {
                -a
            }
        })
        .collect()
}

/// Recovers the symmetric padded matrices `B̃_o` of a degree-≤2 model by
/// probing its forward pass at `0`, `±e_i` and `e_i + e_j`.
pub fn probe_quadratic(model: &Model) -> Vec<Mat<f64>> {
    let d = model.input_dim();
    let eval = |x: &[f64]| -> Vec<f64> {
        let m = Mat::from_fn(1, d, |_, j| x[j]);
        let y = model.forward(m.as_ref()).unwrap();
        (0..y.ncols()).map(|j| y[(0, j)]).collect()
    };
    let unit =
        |i: usize, s: f64| -> Vec<f64> { (0..d).map(|j| if j == i { s } else { 0.0 }).collect() };
    let f0 = eval(&vec![0.0; d]);
    let o = f0.len();
    let plus: Vec<Vec<f64>> = (0..d).map(|i| eval(&unit(i, 1.0))).collect();
    let minus: Vec<Vec<f64>> = (0..d).map(|i| eval(&unit(i, -1.0))).collect();
    (0..o)
        .map(|c| {
            let mut b = Mat::<f64>::zeros(d + 1, d + 1);
            b[(0, 0)] = f0[c];
            for i in 0..d {
                b[(i + 1, i + 1)] = 0.5 * (plus[i][c] + minus[i][c]) - f0[c];
                let lin = 0.25 * (plus[i][c] - minus[i][c]);
                b[(0, i + 1)] = lin;
                b[(i + 1, 0)] = lin;
            }
            for i in 0..d {
                for j in (i + 1)..d {
                    let mut x = vec![0.0; d];
                    x[i] = 1.0;
                    x[j] = 1.0;
                    let fij = eval(&x)[c];
                    let v = 0.5
                        * (fij
                            - f0[c]
                            - 2.0 * b[(0, i + 1)]
                            - 2.0 * b[(0, j + 1)]
                            - b[(i + 1, i + 1)]
                            - b[(j + 1, j + 1)]);
                    b[(i + 1, j + 1)] = v;
                    b[(j + 1, i + 1)] = v;
                }
            }
            b
        })
        .collect()
}

pub fn frobenius(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let mut s = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            s += a[(i, j)] * b[(i, j)];
        }
    }
    s
}

/// Brute-force tensor inner products per output.
pub fn brute_tensor_inner(a: &[Mat<f64>], b: &[Mat<f64>]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| frobenius(x, y)).collect()
}

/// Brute-force `E[f_a f_b]` per output for `x ~ N(0, I)` and
/// `f = x̂ᵀ B̃ x̂`: `(B00 + tr Bxx)(C00 + tr Cxx) + 4 Σ_i B0i C0i + 2 ⟨Bxx, Cxx⟩`.
pub fn brute_gaussian_inner(a: &[Mat<f64>], b: &[Mat<f64>]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let n = x.nrows();
            let mean = |m: &Mat<f64>| (0..n).map(|i| m[(i, i)]).sum::<f64>();
            let mut lin = 0.0;
            let mut quad = 0.0;
            for i in 1..n {
                lin += x[(0, i)] * y[(0, i)];
                for j in 1..n {
                    quad += x[(i, j)] * y[(i, j)];
                }
            }
            mean(x) * mean(y) + 4.0 * lin + 2.0 * quad
        })
        .collect()
}

pub fn cosine(ab: f64, aa: f64, bb: f64) -> f64 {
    ab / (aa.sqrt() * bb.sqrt())
}

pub fn assert_close(found: f64, expected: f64, tol: f64, what: &str) {
    let err = (found - expected).abs();
    assert!(
        err <= tol * expected.abs().max(1.0),
        "{what}: found {found}, expected {expected} (error {err:e}, tolerance {tol:e})"
    );
}
