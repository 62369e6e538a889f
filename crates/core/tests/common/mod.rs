//! Shared fixtures: tiny random models and brute-force references computed
//! from the forward pass alone (no code shared with the metrics under test).
#![allow(dead_code)]

use faer::Mat;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tensim_core::monte_carlo::Estimate;
use tensim_core::network::Network;
use tensim_core::transformer::TransformerShape;
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

/// Two random models of one architecture, from seeds `seeds.0` and `seeds.1`.
pub fn model_pair(layers: Vec<LayerShape>, seeds: (u64, u64)) -> (Model, Model) {
    (model(layers.clone(), seeds.0), model(layers, seeds.1))
}

/// An embedding `linear(input → width)`, one bilinear block `width → hidden →
/// width` per `(hidden, residual_scale)` of `blocks`, then a head
/// `linear(width → output)`; every layer with biases, or none.
pub fn embed_blocks_head(
    input: usize,
    width: usize,
    blocks: &[(usize, f64)],
    output: usize,
    bias: bool,
) -> Vec<LayerShape> {
    let mut layers = vec![linear(input, width, bias)];
    for &(hidden, residual_scale) in blocks {
        layers.push(bilinear(width, hidden, width, bias, residual_scale));
    }
    layers.push(linear(width, output, bias));
    layers
}

/// `n` sequential networks of one architecture (a biased embedding, a
/// biased lerp block, a bias-free head), from the seeds `1..=n`.
pub fn sequential(n: u64) -> Vec<Network> {
    let layers = vec![
        linear(6, 5, true),
        bilinear(5, 7, 5, true, 0.4),
        linear(5, 4, false),
    ];
    (1..=n).map(|s| model(layers.clone(), s).into()).collect()
}

/// `n` one-block benchmark transformers, from the seeds `0..n`.
pub fn transformers(n: u64) -> Vec<Network> {
    let shape = TransformerShape::benchmark(1);
    (0..n)
        .map(|s| shape.random_model(s).unwrap().into())
        .collect()
}

/// `m` with every weight and bias multiplied by `factor`.
pub fn scale_all(m: &Model, factor: f64) -> Model {
    let parameters = m
        .parameters()
        .into_iter()
        .map(|v| v.into_iter().map(|x| x * factor).collect())
        .collect();
    Model::from_parameters(m.architecture(), parameters).unwrap()
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
            embed_blocks_head(5, 4, &[(3, 0.5)], 3, true),
        ),
        (
            "embed+bilinear",
            vec![linear(6, 3, false), bilinear(3, 5, 2, false, 1.0)],
        ),
        ("linear only", vec![linear(4, 3, true)]),
    ]
}

/// Two random models of one architecture with the quadratic forms probed
/// from their forward passes ([`probe_quadratic`]).
pub struct ProbedPair {
    pub name: &'static str,
    pub a: Model,
    pub b: Model,
    pub ta: Vec<Mat<f64>>,
    pub tb: Vec<Mat<f64>>,
}

impl ProbedPair {
    /// Asserts that a metric's per-output inner products `found` of this pair
    /// and its total cosine `total` equal brute force by `brute` on the probed
    /// forms (tolerance 1e-10); returns brute force's `[⟨a,b⟩, ⟨a,a⟩, ⟨b,b⟩]`
    /// per output.
    pub fn assert_matches_brute_force(
        &self,
        found: &[f64],
        total: f64,
        brute: impl Fn(&[Mat<f64>], &[Mat<f64>]) -> Vec<f64>,
    ) -> [Vec<f64>; 3] {
        let name = self.name;
        let [ab, aa, bb] = [
            brute(&self.ta, &self.tb),
            brute(&self.ta, &self.ta),
            brute(&self.tb, &self.tb),
        ];
        assert_each_close(found, &ab, 1e-10, |c| {
            format!("{name}: output {c} inner product")
        });
        let cosine_of_sums = cosine(ab.iter().sum(), aa.iter().sum(), bb.iter().sum());
        assert_close(
            total,
            cosine_of_sums,
            1e-10,
            &format!("{name}: total cosine"),
        );
        [ab, aa, bb]
    }
}

/// A probed pair (seeds `seeds`) of every architecture in
/// [`one_bilinear_architectures`].
pub fn probed_pairs(seeds: (u64, u64)) -> Vec<ProbedPair> {
    one_bilinear_architectures()
        .into_iter()
        .map(|(name, layers)| {
            let (a, b) = model_pair(layers, seeds);
            let (ta, tb) = (probe_quadratic(&a), probe_quadratic(&b));
            ProbedPair { name, a, b, ta, tb }
        })
        .collect()
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

/// [`assert_close`] for each output `c`: `found[c]` against `expected[c]`,
/// described by `what(c)`.
pub fn assert_each_close(
    found: &[f64],
    expected: &[f64],
    tol: f64,
    what: impl Fn(usize) -> String,
) {
    for (c, (f, e)) in found.iter().zip(expected).enumerate() {
        assert_close(*f, *e, tol, &what(c));
    }
}

/// Asserts that `exact` lies within four standard errors of the Monte-Carlo
/// estimate `mc`, printing both and the z-score; `what` names the case.
pub fn assert_within_four_standard_errors(exact: f64, mc: &Estimate, what: &str) {
    let z = (exact - mc.value) / mc.std_error;
    println!(
        "{what}: exact {exact:.6}, Monte-Carlo {:.6} ± {:.6} (z = {z:.2})",
        mc.value, mc.std_error
    );
    assert!(
        z.abs() < 4.0,
        "{what}: exact {exact} vs MC {} ± {}",
        mc.value,
        mc.std_error
    );
}
