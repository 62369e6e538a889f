//! The parameter layout of a network, written once per component.
//!
//! A component is built by asking a [`ParameterSource`] for each of its
//! tensors by name and shape, in order. That one build function is the
//! layout: run against a [`SpecRecorder`] it lists the parameter specs
//! (what checkpoints store and the trainer creates), against a
//! [`ValueReader`] it assembles a network from stored values, and against a
//! [`UniformInit`] it draws PyTorch's default initialisation (the idea of
//! candle-nn's `VarBuilder`). Only the reverse walk, a network's
//! `parameters()`, is written beside it, and the round-trip tests hold the
//! two together.

use faer::Mat;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::{matrix_from_row_major, Bilinear, Linear, ParameterSpec};
use crate::residual::Residual;

/// Hands out a component's tensors, in the order the component asks.
pub(crate) trait ParameterSource {
    /// The `rows × cols` matrix `name` (PyTorch layout `[out, in]`).
    fn matrix(&mut self, name: String, rows: usize, cols: usize) -> Mat<f64>;

    /// The vector `name` of `len` entries: the bias of the matrix asked for
    /// just before it.
    fn vector(&mut self, name: String, len: usize) -> Vec<f64>;

    /// The affine map `prefix.weight` (`rows × cols`) and, when `bias`,
    /// `prefix.bias` (`rows`).
    fn linear(&mut self, prefix: &str, rows: usize, cols: usize, bias: bool) -> Linear {
        let weight = self.matrix(format!("{prefix}.weight"), rows, cols);
        let bias = bias.then(|| self.vector(format!("{prefix}.bias"), rows));
        Linear { weight, bias }
    }

    /// The bilinear block `prefix.{left,right,down}` (each a [`linear`](Self::linear)
    /// map, in that order) of `input → hidden → output`, biases as `bias`
    /// says for left, right and down.
    fn bilinear(
        &mut self,
        prefix: &str,
        [input, hidden, output]: [usize; 3],
        bias: [bool; 3],
        residual: Residual,
    ) -> Bilinear {
        let left = self.linear(&format!("{prefix}.left"), hidden, input, bias[0]);
        let right = self.linear(&format!("{prefix}.right"), hidden, input, bias[1]);
        let down = self.linear(&format!("{prefix}.down"), output, hidden, bias[2]);
        Bilinear {
            left: left.weight,
            right: right.weight,
            down: down.weight,
            left_bias: left.bias,
            right_bias: right.bias,
            down_bias: down.bias,
            residual,
        }
    }
}

/// Lists the specs; the tensors it returns are empty placeholders.
#[derive(Default)]
pub(crate) struct SpecRecorder {
    pub(crate) specs: Vec<ParameterSpec>,
}

impl ParameterSource for SpecRecorder {
    fn matrix(&mut self, name: String, rows: usize, cols: usize) -> Mat<f64> {
        self.specs.push(ParameterSpec {
            name,
            shape: vec![rows, cols],
        });
        Mat::zeros(0, 0)
    }

    fn vector(&mut self, name: String, len: usize) -> Vec<f64> {
        self.specs.push(ParameterSpec {
            name,
            shape: vec![len],
        });
        Vec::new()
    }
}

/// Hands out stored values (row-major) in spec order; the caller has checked
/// their count and sizes against the specs.
pub(crate) struct ValueReader {
    values: std::vec::IntoIter<Vec<f64>>,
}

impl ValueReader {
    pub(crate) fn new(values: Vec<Vec<f64>>) -> Self {
        ValueReader {
            values: values.into_iter(),
        }
    }

    fn next(&mut self) -> Vec<f64> {
        self.values
            .next()
            .expect("values counted against the specs")
    }
}

impl ParameterSource for ValueReader {
    fn matrix(&mut self, _name: String, rows: usize, cols: usize) -> Mat<f64> {
        matrix_from_row_major(rows, cols, &self.next())
    }

    fn vector(&mut self, _name: String, _len: usize) -> Vec<f64> {
        self.next()
    }
}

/// PyTorch's `nn.Linear` initialisation: every entry of a weight and of its
/// bias uniform in `±1/√fan_in`, `fan_in` the weight's columns, drawn from
/// one seeded stream in spec order.
///
/// Two draw conventions exist because models saved and experiments run
/// before this module rely on their exact values: sequential models draw
/// each matrix row by row on the closed interval, transformers column by
/// column on the half-open one.
pub(crate) struct UniformInit {
    rng: StdRng,
    convention: Convention,
    /// Columns of the last matrix drawn: the fan-in of the bias that follows.
    fan_in: usize,
}

/// See [`UniformInit`].
#[derive(Clone, Copy)]
pub(crate) enum Convention {
    /// Row-major order, `[−b, b]`, `b = 1/√max(fan_in, 1)`.
    Sequential,
    /// Column-major order, `[−b, b)`, `b = 1/√fan_in`.
    Transformer,
}

impl UniformInit {
    pub(crate) fn new(seed: u64, convention: Convention) -> Self {
        UniformInit {
            rng: StdRng::seed_from_u64(seed),
            convention,
            fan_in: 1,
        }
    }

    fn draw(&mut self, bound: f64) -> f64 {
        match self.convention {
            Convention::Sequential => self.rng.random_range(-bound..=bound),
            Convention::Transformer => self.rng.random_range(-bound..bound),
        }
    }

    fn bound(&self) -> f64 {
        match self.convention {
            Convention::Sequential => 1.0 / (self.fan_in.max(1) as f64).sqrt(),
            Convention::Transformer => 1.0 / (self.fan_in as f64).sqrt(),
        }
    }
}

impl ParameterSource for UniformInit {
    fn matrix(&mut self, _name: String, rows: usize, cols: usize) -> Mat<f64> {
        self.fan_in = cols;
        let bound = self.bound();
        match self.convention {
            Convention::Sequential => {
                let values: Vec<f64> = (0..rows * cols).map(|_| self.draw(bound)).collect();
                matrix_from_row_major(rows, cols, &values)
            }
            Convention::Transformer => Mat::from_fn(rows, cols, |_, _| self.draw(bound)),
        }
    }

    fn vector(&mut self, _name: String, len: usize) -> Vec<f64> {
        let bound = self.bound();
        (0..len).map(|_| self.draw(bound)).collect()
    }
}
