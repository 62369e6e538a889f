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
                LayerShape::Linear { bias, .. } => {
                    let w = next();
                    affine(&x, w, bias.then(&mut next))?
                }
                LayerShape::Bilinear {
                    left_bias,
                    right_bias,
                    down_bias,
                    residual,
                    ..
                } => {
                    let l = next();
                    let lb = left_bias.then(&mut next);
                    let r = next();
                    let rb = right_bias.then(&mut next);
                    let d = next();
                    let db = down_bias.then(&mut next);
                    let hidden = (affine(&x, l, lb)? * affine(&x, r, rb)?)?;
                    join_residual(&x, affine(&hidden, d, db)?, residual)?
                }
            };
        }
        Ok(x)
    }
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
