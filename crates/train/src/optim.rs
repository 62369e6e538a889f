//! AdamW on candle variables whose moments can be saved and restored (the
//! run's resume state). The update is candle-nn's `AdamW`, operation for
//! operation, so results are those of candle's optimiser bit for bit:
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ(1 − lr·λ) − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
pub use candle_nn::ParamsAdamW;

use crate::snapshot::AdamState;
use crate::Result;

/// One parameter and its two moments.
struct Slot {
    theta: Var,
    first: Var,
    second: Var,
}

pub struct AdamW {
    slots: Vec<Slot>,
    t: u64,
    params: ParamsAdamW,
}

impl AdamW {
    /// AdamW over `vars` (every one a float variable) with moments at zero.
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|theta| {
                let zeros = || Var::zeros(theta.shape(), theta.dtype(), theta.device());
                Ok(Slot {
                    first: zeros()?,
                    second: zeros()?,
                    theta,
                })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW {
            slots,
            t: 0,
            params,
        })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Backpropagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One step with the gradients in `grads` (parameters without one stay).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let ParamsAdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let scale_m = 1.0 / (1.0 - beta1.powi(self.t as i32));
        let scale_v = 1.0 / (1.0 - beta2.powi(self.t as i32));
        for slot in &self.slots {
            let Some(g) = grads.get(&slot.theta) else {
                continue;
            };
            let m = ((slot.first.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((slot.second.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let decayed = (slot.theta.as_tensor() * (1.0 - lr * weight_decay))?;
            let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + eps)?)?;
            let theta = (decayed - (update * lr)?)?;
            slot.first.set(&m)?;
            slot.second.set(&v)?;
            slot.theta.set(&theta)?;
        }
        Ok(())
    }

    /// The step count and moments, parameters in order.
    pub fn state(&self) -> Result<AdamState> {
        let read = |v: &Var| v.as_tensor().flatten_all()?.to_vec1::<f32>();
        Ok(AdamState {
            t: self.t,
            first: self
                .slots
                .iter()
                .map(|s| read(&s.first))
                .collect::<Result<_, _>>()?,
            second: self
                .slots
                .iter()
                .map(|s| read(&s.second))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Continues from `state` (taken from an optimiser of the same network).
    pub fn restore(&mut self, state: &AdamState) -> Result<()> {
        let sizes: Vec<usize> = self.slots.iter().map(|s| s.theta.elem_count()).collect();
        state.check(&sizes)?;
        for (k, slot) in self.slots.iter().enumerate() {
            let shape = slot.theta.shape();
            let device = slot.theta.device();
            slot.first
                .set(&Tensor::from_slice(&state.first[k], shape, device)?)?;
            slot.second
                .set(&Tensor::from_slice(&state.second[k], shape, device)?)?;
        }
        self.t = state.t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::Optimizer;

    /// Five steps of a least-squares fit with this AdamW and with
    /// candle-nn's: the same weights, bit for bit.
    #[test]
    fn equals_candle_nns_adamw_bit_for_bit() {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (16, 5), &device).unwrap();
        let y = Tensor::randn(0f32, 1.0, (16, 3), &device).unwrap();
        let init = Tensor::randn(0f32, 1.0, (5, 3), &device).unwrap();
        let params = ParamsAdamW {
            lr: 3e-2,
            weight_decay: 0.1,
            ..ParamsAdamW::default()
        };
        let fit = |w: &Var, step: &mut dyn FnMut(&Tensor)| {
            for k in 0..5 {
                let loss = (x.matmul(w.as_tensor()).unwrap() - &y).unwrap();
                let loss = loss.sqr().unwrap().mean_all().unwrap();
                step(&(loss * (1.0 + k as f64)).unwrap());
            }
            w.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let ours_w = Var::from_tensor(&init).unwrap();
        let mut ours = AdamW::new(vec![ours_w.clone()], params.clone()).unwrap();
        let theirs_w = Var::from_tensor(&init).unwrap();
        let mut theirs = candle_nn::AdamW::new(vec![theirs_w.clone()], params).unwrap();
        let a = fit(&ours_w, &mut |l| ours.backward_step(l).unwrap());
        let b = fit(&theirs_w, &mut |l| theirs.backward_step(l).unwrap());
        assert_eq!(a, b);
        assert_eq!(ours.state().unwrap().t, 5);
        assert_eq!(init.dtype(), DType::F32);
    }
}
