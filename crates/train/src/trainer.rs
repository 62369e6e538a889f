//! The training loop: AdamW (decoupled weight decay), optional cosine learning
//! rate decay within a stage, additive Gaussian input noise, seeded sampling.

use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::network::Network;
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

/// Visits `0..n` in a fresh random order every epoch.
#[derive(Clone, Debug)]
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
    pub fn next_indices(&mut self, count: usize, rng: &mut StdRng) -> Vec<usize> {
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

/// A network with its optimiser state and random stream.
pub struct Trainer {
    net: Network,
    optimiser: AdamW,
    config: TrainConfig,
    rng: StdRng,
    step: u64,
    /// The last step handed to a checkpoint callback (a stage's start is the
    /// previous stage's end: it is saved once).
    last_checkpoint: Option<u64>,
}

impl Trainer {
    pub fn new(net: Network, config: TrainConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(TrainError::Invalid("batch size must be positive".into()));
        }
        let params = ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        };
        let optimiser = AdamW::new(net.vars(), params)?;
        let rng = StdRng::seed_from_u64(config.seed);
        Ok(Trainer {
            net,
            optimiser,
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
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// One optimiser step on a batch at learning rate `lr`.
    pub fn step(&mut self, batch: &Batch, lr: f64) -> Result<StepStats> {
        let n = batch.len();
        let mut inputs = batch.inputs.clone();
        if self.config.input_noise > 0.0 {
            let noise = Normal::new(0.0f32, self.config.input_noise)
                .map_err(|e| TrainError::Invalid(format!("input noise: {e}")))?;
            for v in &mut inputs {
                *v += noise.sample(&mut self.rng);
            }
        }
        let device = self.net.device().clone();
        let x = Tensor::from_vec(inputs, (n, batch.dim), &device)?;
        let y = Tensor::from_slice(&batch.labels, n, &device)?;
        let logits = self.net.forward(&x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        self.optimiser.set_learning_rate(lr);
        self.optimiser.backward_step(&loss)?;
        self.step += 1;
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

    /// Runs `steps` steps of one stage. `sample` draws each batch; at every
    /// global step in `checkpoints` (before the step is taken, and after the
    /// last one; never twice for the same step) `on_checkpoint` sees the
    /// network; `progress` sees every step.
    pub fn run_stage(
        &mut self,
        steps: u64,
        checkpoints: &[u64],
        mut sample: impl FnMut(&mut StdRng) -> Batch,
        mut on_checkpoint: impl FnMut(u64, &Network) -> Result<()>,
        mut progress: impl FnMut(u64, StepStats),
    ) -> Result<()> {
        let start = self.step;
        let end = start + steps;
        for t in 0..steps {
            if checkpoints.contains(&self.step) && self.last_checkpoint != Some(self.step) {
                on_checkpoint(self.step, &self.net)?;
                self.last_checkpoint = Some(self.step);
            }
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
        if checkpoints.contains(&end) && self.last_checkpoint != Some(end) {
            on_checkpoint(end, &self.net)?;
            self.last_checkpoint = Some(end);
        }
        Ok(())
    }
}
