//! Models as sequences of polynomial layers (MATH.md §1).
//!
//! One weight set drives both views: [`Model::forward`] evaluates a batch of
//! inputs, and the metrics read the same weights as a tensor network. Weights
//! are stored in `f64`, matrices in PyTorch layout `[out, in]`.

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::layout::{Convention, ParameterSource, SpecRecorder, UniformInit, ValueReader};
use crate::residual::Residual;

/// Affine map `y = W x + b`, `W ∈ R^(out×in)` (embedding, unembedding, head;
/// MATH.md §1.2).
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// `W ∈ R^(out×in)`.
    pub weight: Mat<f64>,
    /// `b ∈ R^out`, or `None` for a bias-free layer (`b = 0`).
    pub bias: Option<Vec<f64>>,
}

/// Bilinear block `y = keep·x + mix·(D((L x + b_L) ⊙ (R x + b_R)) + b_D)` (MATH.md §1.3),
/// `(keep, mix)` from its [`Residual`].
///
/// [`Residual::None`] is a plain bilinear layer (any output width); a lerp or
/// additive residual mixes with the input and needs `out == in`. The
/// single-layer classifier `y = P((Lx) ⊙ (Rx))` is one block with `down = P`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bilinear {
    /// `L ∈ R^(hidden×in)`.
    pub left: Mat<f64>,
    /// `R ∈ R^(hidden×in)`.
    pub right: Mat<f64>,
    /// `D ∈ R^(out×hidden)`.
    pub down: Mat<f64>,
    /// `b_L ∈ R^hidden`, or `None` for zero.
    pub left_bias: Option<Vec<f64>>,
    /// `b_R ∈ R^hidden`, or `None` for zero.
    pub right_bias: Option<Vec<f64>>,
    /// `b_D ∈ R^out`, or `None` for zero.
    pub down_bias: Option<Vec<f64>>,
    /// How the block's output joins its input.
    pub residual: Residual,
}

/// One component of a sequential model.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// An affine layer `y = W x + b` (MATH.md §1.2).
    Linear(Linear),
    /// A bilinear block with its residual join (MATH.md §1.3).
    Bilinear(Bilinear),
}

/// The shape of one layer: what a checkpoint must contain for it.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerShape {
    /// The shape of a [`Linear`] layer: `weight` is `[output, input]`.
    Linear {
        /// Input width `in`.
        input: usize,
        /// Output width `out`.
        output: usize,
        /// Whether the layer has a bias `b ∈ R^out`.
        bias: bool,
    },
    /// The shape of a [`Bilinear`] block: `left` and `right` are
    /// `[hidden, input]`, `down` is `[output, hidden]`.
    Bilinear {
        /// Input width `d`.
        input: usize,
        /// Number of hidden units `h`.
        hidden: usize,
        /// Output width `o` (equal to `input` unless the residual is [`Residual::None`]).
        output: usize,
        /// Whether the block has `b_L ∈ R^h`.
        left_bias: bool,
        /// Whether the block has `b_R ∈ R^h`.
        right_bias: bool,
        /// Whether the block has `b_D ∈ R^o`.
        down_bias: bool,
        /// How the block's output joins its input.
        residual: Residual,
    },
}

/// A model's architecture: its layer shapes in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// The layer shapes, input side first.
    pub layers: Vec<LayerShape>,
}

/// Name and shape of one parameter tensor (`[rows, cols]` or `[len]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterSpec {
    /// The parameter's name, e.g. `layers.0.left.weight` (see
    /// [`Architecture::parameter_specs`]).
    pub name: String,
    /// Its shape: `[rows, cols]` for a weight matrix, `[len]` for a bias.
    pub shape: Vec<usize>,
}

/// A sequential model `embed → blocks → head`, as a list of layers.
///
/// Built only through [`Model::new`] (or [`Model::from_parameters`]), which
/// checks shapes, chaining and finiteness and computes the architecture and
/// fingerprint once.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    layers: Vec<Layer>,
    architecture: Architecture,
    fingerprint: u64,
}

impl LayerShape {
    /// A plain bilinear layer `input → hidden → output`: no biases, no
    /// residual (the paper's classifier layer).
    pub fn bilinear(input: usize, hidden: usize, output: usize) -> Self {
        LayerShape::Bilinear {
            input,
            hidden,
            output,
            left_bias: false,
            right_bias: false,
            down_bias: false,
            residual: Residual::None,
        }
    }

    /// The width of the layer's input.
    pub fn input(&self) -> usize {
        match *self {
            LayerShape::Linear { input, .. } | LayerShape::Bilinear { input, .. } => input,
        }
    }
    /// The width of the layer's output.
    pub fn output(&self) -> usize {
        match *self {
            LayerShape::Linear { output, .. } | LayerShape::Bilinear { output, .. } => output,
        }
    }
}

impl Architecture {
    /// Input width of the first layer.
    pub fn input_dim(&self) -> usize {
        self.layers.first().map_or(0, LayerShape::input)
    }

    /// Output width of the last layer.
    pub fn output_dim(&self) -> usize {
        self.layers.last().map_or(0, LayerShape::output)
    }

    /// Number of polynomial (bilinear) layers: 0 or 1 means the model is one bilinear form.
    pub fn bilinear_layers(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| matches!(l, LayerShape::Bilinear { .. }))
            .count()
    }

    /// Checks that every width is at least 1, layers chain, and residual
    /// blocks are square with `s ∈ [0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::Empty);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let widths: &[(&'static str, usize)] = match *layer {
                LayerShape::Linear { input, output, .. } => &[("input", input), ("output", output)],
                LayerShape::Bilinear {
                    input,
                    hidden,
                    output,
                    ..
                } => &[("input", input), ("hidden", hidden), ("output", output)],
            };
            if let Some(&(what, _)) = widths.iter().find(|w| w.1 == 0) {
                return Err(Error::ZeroWidth { layer: i, what });
            }
        }
        for (i, pair) in self.layers.windows(2).enumerate() {
            if pair[0].output() != pair[1].input() {
                return Err(Error::Chain {
                    layer: i + 1,
                    expected: pair[1].input(),
                    found: pair[0].output(),
                });
            }
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if let LayerShape::Bilinear {
                input,
                output,
                residual,
                ..
            } = *layer
            {
                residual.validate(i, input, output)?;
            }
        }
        Ok(())
    }

    /// Every parameter tensor, in a fixed order, with its name and shape.
    ///
    /// Names: `layers.{i}.weight`/`.bias` for linear layers and
    /// `layers.{i}.{left,right,down}.weight`/`.bias` for bilinear ones.
    pub fn parameter_specs(&self) -> Vec<ParameterSpec> {
        let mut recorder = SpecRecorder::default();
        self.build_layers(&mut recorder);
        recorder.specs
    }

    /// A model with PyTorch's default `nn.Linear` initialisation,
    /// `U(−1/√fan_in, 1/√fan_in)` for weights and biases, from a fixed seed.
    pub fn random_model(&self, seed: u64) -> Result<Model> {
        self.validate()?;
        Model::new(self.build_layers(&mut UniformInit::new(seed, Convention::Sequential)))
    }

    /// The layout of every layer: its tensors' names, shapes and order,
    /// fetched from `source` ([`crate::layout`]).
    fn build_layers(&self, source: &mut dyn ParameterSource) -> Vec<Layer> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, shape) in self.layers.iter().enumerate() {
            layers.push(match *shape {
                LayerShape::Linear {
                    input,
                    output,
                    bias,
                } => Layer::Linear(source.linear(&format!("layers.{i}"), output, input, bias)),
                LayerShape::Bilinear {
                    input,
                    hidden,
                    output,
                    left_bias,
                    right_bias,
                    down_bias,
                    residual,
                } => Layer::Bilinear(source.bilinear(
                    &format!("layers.{i}"),
                    [input, hidden, output],
                    [left_bias, right_bias, down_bias],
                    residual,
                )),
            });
        }
        layers
    }
}

/// Builds a `rows×cols` matrix from row-major values.
pub fn matrix_from_row_major(rows: usize, cols: usize, values: &[f64]) -> Mat<f64> {
    debug_assert_eq!(values.len(), rows * cols);
    Mat::from_fn(rows, cols, |i, j| values[i * cols + j])
}

/// Row-major values of a matrix (PyTorch layout on disk).
pub fn matrix_to_row_major(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.push(m[(i, j)]);
        }
    }
    out
}

fn check_finite(name: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            tensor: name.to_string(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

impl Model {
    /// Builds a model from layers, checking shapes, chaining and finiteness.
    pub fn new(layers: Vec<Layer>) -> Result<Self> {
        let architecture = architecture_of(&layers)?;
        architecture.validate()?;
        let mut model = Model {
            layers,
            architecture,
            fingerprint: 0,
        };
        let (specs, parameters) = (model.architecture.parameter_specs(), model.parameters());
        for (spec, values) in specs.iter().zip(&parameters) {
            check_finite(&spec.name, values)?;
        }
        model.fingerprint = model.compute_fingerprint(&specs, &parameters);
        Ok(model)
    }

    /// The single-layer classifier `y = P((L x) ⊙ (R x))` (no biases, no residual).
    pub fn bilinear_classifier(left: Mat<f64>, right: Mat<f64>, head: Mat<f64>) -> Result<Self> {
        Model::new(vec![Layer::Bilinear(Bilinear {
            left,
            right,
            down: head,
            left_bias: None,
            right_bias: None,
            down_bias: None,
            residual: Residual::None,
        })])
    }

    /// Builds a model of a given architecture from its parameter tensors, in the
    /// order of [`Architecture::parameter_specs`], each flattened row-major.
    pub fn from_parameters(arch: &Architecture, values: Vec<Vec<f64>>) -> Result<Self> {
        arch.validate()?;
        check_parameter_values(&arch.parameter_specs(), &values)?;
        Model::new(arch.build_layers(&mut ValueReader::new(values)))
    }

    /// The layers in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The architecture this model instantiates.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// Input width of the model (of its first layer).
    pub fn input_dim(&self) -> usize {
        self.architecture.input_dim()
    }

    /// Output width of the model (of its last layer).
    pub fn output_dim(&self) -> usize {
        self.architecture.output_dim()
    }

    /// Every parameter tensor flattened row-major, in [`Architecture::parameter_specs`] order.
    pub fn parameters(&self) -> Vec<Vec<f64>> {
        let mut out = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::Linear(l) => {
                    out.push(matrix_to_row_major(l.weight.as_ref()));
                    out.extend(l.bias.clone());
                }
                Layer::Bilinear(b) => {
                    out.push(matrix_to_row_major(b.left.as_ref()));
                    out.extend(b.left_bias.clone());
                    out.push(matrix_to_row_major(b.right.as_ref()));
                    out.extend(b.right_bias.clone());
                    out.push(matrix_to_row_major(b.down.as_ref()));
                    out.extend(b.down_bias.clone());
                }
            }
        }
        out
    }

    /// A 64-bit FNV-1a hash of the architecture and every weight's bits
    /// (computed once, at construction).
    ///
    /// Pair metrics order their two arguments by it, so that `sim(a, b)` and
    /// `sim(b, a)` run the same floating-point operations (bit-exact symmetry).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The fingerprint from the model's specs and parameters (computed once
    /// by [`Model::new`], which also checks them).
    fn compute_fingerprint(&self, specs: &[ParameterSpec], parameters: &[Vec<f64>]) -> u64 {
        let mut h = Fnv::new();
        for (spec, values) in specs.iter().zip(parameters) {
            for &d in &spec.shape {
                h.eat(d as u64);
            }
            for &v in values {
                h.eat(v.to_bits());
            }
        }
        for layer in &self.layers {
            if let Layer::Bilinear(b) = layer {
                b.residual.hash_into(&mut h);
            }
        }
        h.finish()
    }

    /// Batched forward pass: `inputs` is `n×d_in`, the result `n×d_out` (f64).
    pub fn forward(&self, inputs: MatRef<'_, f64>) -> Result<Mat<f64>> {
        if inputs.ncols() != self.input_dim() {
            return Err(Error::Mismatch {
                what: "input width",
                a: format!("{} (model)", self.input_dim()),
                b: format!("{} (inputs)", inputs.ncols()),
            });
        }
        let mut x = inputs.to_owned();
        for layer in &self.layers {
            x = match layer {
                Layer::Linear(l) => affine_rows(x.as_ref(), l.weight.as_ref(), l.bias.as_deref()),
                Layer::Bilinear(b) => bilinear_rows(x.as_ref(), b),
            };
        }
        Ok(x)
    }
}

/// The architecture of `layers`, checking that each layer's tensors agree
/// in shape (chaining across layers is [`Architecture::validate`]'s job).
fn architecture_of(layers: &[Layer]) -> Result<Architecture> {
    let mut shapes = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let check_len = |name: &str, v: &Option<Vec<f64>>, len: usize| match v {
            Some(v) if v.len() != len => Err(Error::Shape {
                tensor: format!("layers.{i}.{name}"),
                expected: vec![len],
                found: vec![v.len()],
            }),
            _ => Ok(()),
        };
        shapes.push(match layer {
            Layer::Linear(l) => {
                check_len("bias", &l.bias, l.weight.nrows())?;
                LayerShape::Linear {
                    input: l.weight.ncols(),
                    output: l.weight.nrows(),
                    bias: l.bias.is_some(),
                }
            }
            Layer::Bilinear(b) => {
                let (hidden, input) = b.left.shape();
                for (name, m) in [("right.weight", &b.right)] {
                    if m.shape() != (hidden, input) {
                        return Err(Error::Shape {
                            tensor: format!("layers.{i}.{name}"),
                            expected: vec![hidden, input],
                            found: vec![m.nrows(), m.ncols()],
                        });
                    }
                }
                if b.down.ncols() != hidden {
                    return Err(Error::Shape {
                        tensor: format!("layers.{i}.down.weight"),
                        expected: vec![b.down.nrows(), hidden],
                        found: vec![b.down.nrows(), b.down.ncols()],
                    });
                }
                check_len("left.bias", &b.left_bias, hidden)?;
                check_len("right.bias", &b.right_bias, hidden)?;
                check_len("down.bias", &b.down_bias, b.down.nrows())?;
                LayerShape::Bilinear {
                    input,
                    hidden,
                    output: b.down.nrows(),
                    left_bias: b.left_bias.is_some(),
                    right_bias: b.right_bias.is_some(),
                    down_bias: b.down_bias.is_some(),
                    residual: b.residual,
                }
            }
        });
    }
    Ok(Architecture { layers: shapes })
}

/// Checks that `values` holds one tensor per spec, each of the spec's size
/// (finiteness is the constructors' check, done once).
pub(crate) fn check_parameter_values(specs: &[ParameterSpec], values: &[Vec<f64>]) -> Result<()> {
    if specs.len() != values.len() {
        return Err(Error::ParameterCount {
            expected: specs.len(),
            given: values.len(),
        });
    }
    for (spec, v) in specs.iter().zip(values) {
        let expected: usize = spec.shape.iter().product();
        if v.len() != expected {
            return Err(Error::Shape {
                tensor: spec.name.clone(),
                expected: spec.shape.clone(),
                found: vec![v.len()],
            });
        }
    }
    Ok(())
}

/// A bilinear block on a batch of row vectors:
/// `keep·x + mix·(D((L x + b_L) ⊙ (R x + b_R)) + b_D)` ([`Residual::apply`]).
pub(crate) fn bilinear_rows(x: MatRef<'_, f64>, b: &Bilinear) -> Mat<f64> {
    let u = affine_rows(x, b.left.as_ref(), b.left_bias.as_deref());
    let v = affine_rows(x, b.right.as_ref(), b.right_bias.as_deref());
    let hidden = Mat::from_fn(u.nrows(), u.ncols(), |i, j| u[(i, j)] * v[(i, j)]);
    let y = affine_rows(hidden.as_ref(), b.down.as_ref(), b.down_bias.as_deref());
    b.residual.apply(x, y)
}

/// `X Wᵀ + 1 bᵀ` for a batch of row vectors.
pub(crate) fn affine_rows(
    x: MatRef<'_, f64>,
    w: MatRef<'_, f64>,
    bias: Option<&[f64]>,
) -> Mat<f64> {
    let mut y = crate::gemm::product_t(x, w, faer::Par::Seq);
    if let Some(b) = bias {
        for j in 0..y.ncols() {
            for i in 0..y.nrows() {
                y[(i, j)] += b[j];
            }
        }
    }
    y
}

/// 64-bit FNV-1a over a stream of words.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn eat(&mut self, x: u64) {
        for byte in x.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a hash of a matrix's shape and bits.
pub(crate) fn hash_values(m: MatRef<'_, f64>) -> u64 {
    let mut h = Fnv::new();
    h.eat(m.nrows() as u64);
    h.eat(m.ncols() as u64);
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            h.eat(m[(i, j)].to_bits());
        }
    }
    h.finish()
}
