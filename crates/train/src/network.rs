//! Candle parameters of a tensim architecture and their forward pass.
//!
//! Layer semantics are those of [`tensim_core::Model::forward`] (MATH.md §1):
//! linear `y = x Wᵀ + b`; bilinear block
//! `y = (1−s)·x + s·(((x L̂ᵀ) ⊙ (x R̂ᵀ)) Dᵀ + b_D)`. Training runs in f32.

use candle_core::{DType, Device, Tensor, Var};
use tensim_core::{Architecture, LayerShape, Model, ParameterSpec, Residual};

use crate::{Result, TrainError};

/// The values of trained variables, widened to f64, in their order (the
/// inverse of [`vars_from_values`]).
pub(crate) fn values_of(vars: &[Var]) -> Result<Vec<Vec<f64>>> {
    vars.iter()
        .map(|v| {
            Ok(v.as_tensor()
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?)
        })
        .collect()
}

/// One f32 [`Var`] per parameter spec from f64 values in spec order (a
/// count mismatch is an error that names both counts).
pub(crate) fn vars_from_values(
    specs: &[ParameterSpec],
    values: Vec<Vec<f64>>,
    device: &Device,
) -> Result<Vec<Var>> {
    if values.len() != specs.len() {
        return Err(TrainError::Invalid(format!(
            "the model has {} parameter tensors but its shape declares {} (inconsistent biases?)",
            values.len(),
            specs.len()
        )));
    }
    specs
        .iter()
        .zip(values)
        .map(|(spec, values)| {
            let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            Ok(Var::from_tensor(&Tensor::from_vec(
                data,
                spec.shape.as_slice(),
                device,
            )?)?)
        })
        .collect()
}

/// Trainable parameters, one [`Var`] per tensor of
/// [`Architecture::parameter_specs`], in that order.
pub struct Network {
    arch: Architecture,
    vars: Vec<Var>,
    device: Device,
}

impl Network {
    /// Parameters initialised like PyTorch's `nn.Linear` from `seed`
    /// (the core's initialiser, so CPU and GPU runs start identically).
    pub fn init(arch: &Architecture, seed: u64, device: &Device) -> Result<Self> {
        Self::from_model(&arch.random_model(seed)?, device)
    }

    /// Parameters copied from a core model (rounded to f32).
    pub fn from_model(model: &Model, device: &Device) -> Result<Self> {
        let arch = model.architecture().clone();
        let vars = vars_from_values(&arch.parameter_specs(), model.parameters(), device)?;
        Ok(Network {
            arch,
            vars,
            device: device.clone(),
        })
    }

    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variables the optimiser updates.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.clone()
    }

    /// The weights as a core model (f64).
    pub fn to_model(&self) -> Result<Model> {
        Ok(Model::from_parameters(&self.arch, values_of(&self.vars)?)?)
    }

    /// Logits for a batch `x` of shape `(n, d_in)`, f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut vars = self.vars.iter().map(Var::as_tensor);
        let mut next = || vars.next().expect("one variable per parameter spec");
        let mut x = x.clone();
        for layer in &self.arch.layers {
            x = match *layer {
                LayerShape::Linear { bias, .. } => Affine::take(&mut next, bias).apply(&x)?,
                LayerShape::Bilinear {
                    left_bias,
                    right_bias,
                    down_bias,
                    residual,
                    ..
                } => {
                    let [l, r, d] = bilinear_maps(&mut next, [left_bias, right_bias, down_bias]);
                    let hidden = (l.apply(&x)? * r.apply(&x)?)?;
                    join_residual(&x, d.apply(&hidden)?, residual)?
                }
            };
        }
        Ok(x)
    }
}

/// An affine map's parameters in the order the architecture's specs list
/// them: the weight, then the bias when the layer has one.
#[derive(Clone, Debug)]
pub(crate) struct Affine<T> {
    pub weight: T,
    pub bias: Option<T>,
}

impl<T> Affine<T> {
    /// The map whose weight `next` hands out now, and its bias next when
    /// `bias`.
    pub(crate) fn take(next: &mut impl FnMut() -> T, bias: bool) -> Self {
        let weight = next();
        Affine {
            weight,
            bias: bias.then(next),
        }
    }
}

impl Affine<&Tensor> {
    /// `x Wᵀ + b` ([`affine`]).
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        affine(x, self.weight, self.bias)
    }
}

/// A bilinear block's left, right and down maps, taken from `next` in spec
/// order, each with a bias where `biases` says so.
pub(crate) fn bilinear_maps<T>(next: &mut impl FnMut() -> T, biases: [bool; 3]) -> [Affine<T>; 3] {
    biases.map(|bias| Affine::take(next, bias))
}

/// `keep·x + mix·y` of a residual ([`Residual::coefficients`]); `y` itself
/// when there is none.
pub(crate) fn join_residual(x: &Tensor, y: Tensor, residual: Residual) -> Result<Tensor> {
    match residual {
        Residual::None => Ok(y),
        _ => {
            let (keep, mix) = residual.coefficients();
            Ok((x.affine(keep, 0.0)? + y.affine(mix, 0.0)?)?)
        }
    }
}

/// `x Wᵀ + b` on rows.
pub(crate) fn affine(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}
