//! The training loop: AdamW (decoupled weight decay), optional cosine learning
//! rate decay within a stage, additive Gaussian input noise, seeded sampling.

use candle_core::Tensor;
use faer::Par;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::host::{self, HostStep};
use crate::network::Network;
use crate::optim::{AdamW, ParamsAdamW};
use crate::snapshot::{run_rng, RngState, RunRng, TrainerState};
use crate::{Result, TrainError};

/// Optimiser and batch settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// Standard deviation of additive Gaussian noise on training inputs (0: none).
    pub input_noise: f32,
    /// Cosine decay of the learning rate from its value to 0 over each stage.
    pub cosine_decay: bool,
    pub seed: u64,
}

impl TrainConfig {
    /// AdamW at a constant learning rate, no input noise.
    pub fn noiseless(learning_rate: f64, weight_decay: f64, batch_size: usize, seed: u64) -> Self {
        TrainConfig {
            learning_rate,
            weight_decay,
            batch_size,
            input_noise: 0.0,
            cosine_decay: false,
            seed,
        }
    }

    /// The same with the learning rate decayed to 0 over each stage.
    pub fn cosine(self) -> Self {
        TrainConfig {
            cosine_decay: true,
            ..self
        }
    }
}

/// A batch of training examples on the host, inputs row-major `n × dim`.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub inputs: Vec<f32>,
    pub labels: Vec<u32>,
    pub dim: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Visits `0..n` in a fresh random order every epoch; its state is saved
/// with a run's resume state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shuffler {
    order: Vec<usize>,
    position: usize,
}

impl Shuffler {
    pub fn new(n: usize) -> Self {
        Shuffler {
            order: (0..n).collect(),
            position: n,
        }
    }

    /// The next `count` indices (reshuffling at each epoch boundary).
    pub fn next_indices(&mut self, count: usize, rng: &mut RunRng) -> Vec<usize> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count && !self.order.is_empty() {
            if self.position == self.order.len() {
                self.order.shuffle(rng);
                self.position = 0;
            }
            out.push(self.order[self.position]);
            self.position += 1;
        }
        out
    }
}

/// What a training step reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    pub accuracy: f32,
}

/// How a step computes gradients and updates the parameters.
enum Engine {
    /// candle's autograd and AdamW on the network's device (CUDA).
    Autograd(Box<AdamW>),
    /// The hand-written backward pass and fused AdamW on host vectors
    /// ([`crate::host`]); the network's variables are written after every
    /// step. The CPU's engine: about twice candle's steps per second.
    Host(Box<HostStep>),
}

/// A network with its optimiser state and random stream.
pub struct Trainer {
    net: Network,
    engine: Engine,
    config: TrainConfig,
    rng: RunRng,
    step: u64,
    /// The last step handed to a checkpoint callback (a stage's start is the
    /// previous stage's end: it is saved once).
    last_checkpoint: Option<u64>,
}

impl Trainer {
    /// A trainer for `net`: on the CPU with the host engine, elsewhere with
    /// candle's autograd.
    pub fn new(net: Network, config: TrainConfig) -> Result<Self> {
        let autograd = !net.device().is_cpu();
        Self::with_engine(net, config, autograd)
    }

    /// A trainer with candle's autograd (`autograd`) or the host engine
    /// (CPU only); the tests compare the two.
    fn with_engine(net: Network, config: TrainConfig, autograd: bool) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(TrainError::Invalid("batch size must be positive".into()));
        }
        let params = ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        };
        let engine = if autograd {
            Engine::Autograd(Box::new(AdamW::new(net.vars(), params)?))
        } else {
            let adam = host::AdamW {
                beta1: params.beta1,
                beta2: params.beta2,
                eps: params.eps,
                weight_decay: params.weight_decay,
            };
            Engine::Host(Box::new(HostStep::new(&net, adam, Par::rayon(0))?))
        };
        let rng = run_rng(config.seed);
        Ok(Trainer {
            net,
            engine,
            config,
            rng,
            step: 0,
            last_checkpoint: None,
        })
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Global step count (over all stages).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The run's random stream (for batch sampling, poisoning, …).
    pub fn rng(&mut self) -> &mut RunRng {
        &mut self.rng
    }

    /// Everything besides the weights that the next step depends on.
    pub fn state(&self) -> Result<TrainerState> {
        let adam = match &self.engine {
            Engine::Host(host) => host.adam_state(),
            Engine::Autograd(optimiser) => optimiser.state()?,
        };
        Ok(TrainerState {
            step: self.step,
            rng: Some(RngState::of(&self.rng)),
            adam,
        })
    }

    /// A trainer that continues from `state`, taken by [`Trainer::state`] at
    /// a checkpoint whose weights `net` holds: its next steps are those the
    /// interrupted trainer would have taken.
    pub fn resume(net: Network, config: TrainConfig, state: &TrainerState) -> Result<Self> {
        let autograd = !net.device().is_cpu();
        Self::resume_with_engine(net, config, state, autograd)
    }

    fn resume_with_engine(
        net: Network,
        config: TrainConfig,
        state: &TrainerState,
        autograd: bool,
    ) -> Result<Self> {
        let mut trainer = Self::with_engine(net, config, autograd)?;
        match &mut trainer.engine {
            Engine::Host(host) => host.restore_adam(&state.adam)?,
            Engine::Autograd(optimiser) => optimiser.restore(&state.adam)?,
        }
        let rng = state
            .rng
            .as_ref()
            .ok_or_else(|| TrainError::Invalid("the saved state has no random stream".into()))?;
        trainer.rng = rng.rng()?;
        trainer.step = state.step;
        trainer.last_checkpoint = Some(state.step);
        Ok(trainer)
    }

    /// One optimiser step on a batch at learning rate `lr`.
    pub fn step(&mut self, batch: &Batch, lr: f64) -> Result<StepStats> {
        let noise = match self.config.input_noise {
            s if s > 0.0 => Some(
                Normal::new(0.0f32, s)
                    .map_err(|e| TrainError::Invalid(format!("input noise: {e}")))?,
            ),
            _ => None,
        };
        let n = batch.len();
        let stats = match &mut self.engine {
            Engine::Host(host) => {
                noisy_inputs(host.input_mut(n, batch.dim), batch, noise, &mut self.rng);
                let stats = host.step(&batch.labels, lr)?;
                host.write_to(&self.net.vars())?;
                stats
            }
            Engine::Autograd(optimiser) => {
                let mut inputs = Vec::with_capacity(batch.inputs.len());
                noisy_inputs(&mut inputs, batch, noise, &mut self.rng);
                autograd_step(&self.net, optimiser, inputs, batch, lr)?
            }
        };
        self.step += 1;
        Ok(stats)
    }

    /// Runs `steps` steps of one stage. `sample` draws each batch; at every
    /// global step in `checkpoints` (before the step is taken, and after the
    /// last one; never twice for the same step) `on_checkpoint` sees the
    /// network and the trainer's state; `progress` sees every step.
    pub fn run_stage(
        &mut self,
        steps: u64,
        checkpoints: &[u64],
        sample: impl FnMut(&mut RunRng) -> Batch,
        on_checkpoint: impl FnMut(u64, &Network, &TrainerState) -> Result<()>,
        progress: impl FnMut(u64, StepStats),
    ) -> Result<()> {
        self.run_stage_from(0, steps, checkpoints, sample, on_checkpoint, progress)
    }

    /// [`Trainer::run_stage`] entered at step `first` of the stage (a
    /// resumed run): the learning-rate schedule is the stage's, the steps
    /// before `first` are not taken again.
    pub fn run_stage_from(
        &mut self,
        first: u64,
        steps: u64,
        checkpoints: &[u64],
        mut sample: impl FnMut(&mut RunRng) -> Batch,
        mut on_checkpoint: impl FnMut(u64, &Network, &TrainerState) -> Result<()>,
        mut progress: impl FnMut(u64, StepStats),
    ) -> Result<()> {
        let end = self.step + steps.saturating_sub(first);
        for t in first..steps {
            self.checkpoint(checkpoints, &mut on_checkpoint)?;
            let lr = if self.config.cosine_decay {
                self.config.learning_rate
                    * 0.5
                    * (1.0 + (std::f64::consts::PI * t as f64 / steps as f64).cos())
            } else {
                self.config.learning_rate
            };
            let batch = sample(&mut self.rng);
            let stats = self.step(&batch, lr)?;
            if !stats.loss.is_finite() {
                return Err(TrainError::Invalid(format!(
                    "training diverged at step {}: loss is {}",
                    self.step, stats.loss
                )));
            }
            progress(self.step, stats);
        }
        debug_assert_eq!(self.step, end);
        self.checkpoint(checkpoints, &mut on_checkpoint)
    }

    /// Hands the network and state to `on_checkpoint` if the current step
    /// is in `checkpoints` and was not handed over already.
    fn checkpoint(
        &mut self,
        checkpoints: &[u64],
        on_checkpoint: &mut impl FnMut(u64, &Network, &TrainerState) -> Result<()>,
    ) -> Result<()> {
        if checkpoints.contains(&self.step) && self.last_checkpoint != Some(self.step) {
            let state = self.state()?;
            on_checkpoint(self.step, &self.net, &state)?;
            self.last_checkpoint = Some(self.step);
        }
        Ok(())
    }
}

/// Entries of the batch that share one noise stream: fixed, so the noise
/// depends on the seed alone, never on the thread count.
const NOISE_CHUNK: usize = 1 << 14;

/// The batch's inputs plus, with `noise`, one Gaussian draw per entry, into
/// `out`. The draws are the largest host-side cost of a step (one per input
/// entry, 400k on the backdoor classifier), so they run in parallel: one
/// seed from `rng` per step, and chunk `i` of [`NOISE_CHUNK`] entries draws
/// from its own Xoshiro256++ generator seeded with `seed + i` (statistical
/// quality ample for input noise, a fraction of ChaCha's cost per draw).
fn noisy_inputs(out: &mut Vec<f32>, batch: &Batch, noise: Option<Normal<f32>>, rng: &mut RunRng) {
    out.clear();
    out.extend_from_slice(&batch.inputs);
    if let Some(noise) = noise {
        let seed: u64 = rng.random();
        out.par_chunks_mut(NOISE_CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| {
                let mut stream = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(i as u64));
                for v in chunk {
                    *v += noise.sample(&mut stream);
                }
            });
    }
}

/// One step with candle's autograd and AdamW on the network's device.
fn autograd_step(
    net: &Network,
    optimiser: &mut AdamW,
    inputs: Vec<f32>,
    batch: &Batch,
    lr: f64,
) -> Result<StepStats> {
    let n = batch.len();
    let device = net.device().clone();
    let x = Tensor::from_vec(inputs, (n, batch.dim), &device)?;
    let y = Tensor::from_slice(&batch.labels, n, &device)?;
    let logits = net.forward(&x)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
    optimiser.set_learning_rate(lr);
    optimiser.backward_step(&loss)?;
    let correct = logits
        .argmax(1)?
        .eq(&y)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(StepStats {
        loss: loss.to_scalar::<f32>()?,
        accuracy: correct / n as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::rngs::StdRng;
    use rand::Rng;
    use tensim_core::{Architecture, LayerShape, Residual};

    fn bilinear(input: usize, output: usize, biases: bool, residual: Residual) -> LayerShape {
        LayerShape::Bilinear {
            input,
            hidden: 5,
            output,
            left_bias: biases,
            right_bias: biases,
            down_bias: biases,
            residual,
        }
    }

    /// Every kind of layer: linear with and without bias, bilinear with
    /// biases (L̂ and R̂ apart) and without (stacked), residual or not.
    fn architectures() -> Vec<Architecture> {
        let linear = |input, output, bias| LayerShape::Linear {
            input,
            output,
            bias,
        };
        vec![
            Architecture {
                layers: vec![bilinear(7, 3, false, Residual::None)],
            },
            Architecture {
                layers: vec![
                    linear(7, 6, true),
                    bilinear(6, 6, true, Residual::Lerp(0.6)),
                    bilinear(6, 6, false, Residual::Add(0.5)),
                    linear(6, 3, false),
                ],
            },
        ]
    }

    /// The host engine's parameters after a few noisy steps are candle
    /// autograd's, to f32 summation-order differences.
    #[test]
    fn host_engine_matches_candle_autograd() {
        let mut data = StdRng::seed_from_u64(1);
        for arch in architectures() {
            let dim = arch.layers[0].input();
            let batch = Batch {
                inputs: (0..32 * dim)
                    .map(|_| data.random_range(-1.0..1.0))
                    .collect(),
                labels: (0..32).map(|_| data.random_range(0..3)).collect(),
                dim,
            };
            let config = TrainConfig {
                learning_rate: 1e-2,
                weight_decay: 1e-2,
                batch_size: 32,
                input_noise: 0.1,
                cosine_decay: false,
                seed: 2,
            };
            let train = |autograd| {
                let net = Network::init(&arch, 3, &Device::Cpu).unwrap();
                let mut t = Trainer::with_engine(net, config.clone(), autograd).unwrap();
                let stats: Vec<StepStats> = (0..5).map(|_| t.step(&batch, 1e-2).unwrap()).collect();
                (stats, t.network().to_model().unwrap().parameters())
            };
            let (host_stats, host) = train(false);
            let (candle_stats, candle) = train(true);
            for (a, b) in host_stats.iter().zip(&candle_stats) {
                assert!((a.loss - b.loss).abs() < 1e-5, "loss {a:?} vs {b:?}");
                assert_eq!(a.accuracy, b.accuracy);
            }
            for (a, b) in host.iter().flatten().zip(candle.iter().flatten()) {
                assert!((a - b).abs() < 1e-5, "parameter {a} vs {b}");
            }
        }
    }

    /// Training stopped at a checkpoint and resumed from its saved weights
    /// (through the f64 model, as checkpoints store them), state and
    /// shuffler takes exactly the steps of the uninterrupted run, on both
    /// engines: same losses, same final weights, bit for bit.
    #[test]
    fn a_resumed_stage_takes_the_steps_of_the_uninterrupted_one() {
        let arch = &architectures()[1];
        let dim = arch.layers[0].input();
        let mut data = StdRng::seed_from_u64(4);
        let inputs: Vec<f32> = (0..200 * dim)
            .map(|_| data.random_range(-1.0..1.0))
            .collect();
        let labels: Vec<u32> = (0..200).map(|_| data.random_range(0..3)).collect();
        let batch = |shuffler: &mut Shuffler, rng: &mut RunRng| {
            let idx = shuffler.next_indices(16, rng);
            Batch {
                inputs: idx
                    .iter()
                    .flat_map(|&i| inputs[i * dim..(i + 1) * dim].to_vec())
                    .collect(),
                labels: idx.iter().map(|&i| labels[i]).collect(),
                dim,
            }
        };
        let config = TrainConfig {
            input_noise: 0.2,
            ..TrainConfig::noiseless(1e-2, 1e-2, 16, 9).cosine()
        };
        for autograd in [false, true] {
            let net = Network::init(arch, 3, &Device::Cpu).unwrap();
            let mut whole = Trainer::with_engine(net, config.clone(), autograd).unwrap();
            let shuffler = std::cell::RefCell::new(Shuffler::new(200));
            let mut saved = None;
            let mut losses = Vec::new();
            whole
                .run_stage(
                    30,
                    &[0, 12, 30],
                    |rng| batch(&mut shuffler.borrow_mut(), rng),
                    |step, net, state| {
                        if step == 12 {
                            let model = net.to_model()?;
                            saved = Some((model, state.clone(), shuffler.borrow().clone()));
                        }
                        Ok(())
                    },
                    |step, st| losses.push((step, st)),
                )
                .unwrap();
            let (model, state, mut shuffler) = saved.unwrap();
            let net = Network::from_model(&model, &Device::Cpu).unwrap();
            let mut resumed =
                Trainer::resume_with_engine(net, config.clone(), &state, autograd).unwrap();
            let mut again = Vec::new();
            resumed
                .run_stage_from(
                    12,
                    30,
                    &[0, 12, 30],
                    |rng| batch(&mut shuffler, rng),
                    |step, _, _| {
                        assert_eq!(step, 30, "the resumed step is not saved again");
                        Ok(())
                    },
                    |step, st| again.push((step, st)),
                )
                .unwrap();
            assert_eq!(again, losses[12..], "autograd {autograd}");
            assert_eq!(
                resumed.network().to_model().unwrap().parameters(),
                whole.network().to_model().unwrap().parameters(),
                "autograd {autograd}"
            );
        }
    }
}
