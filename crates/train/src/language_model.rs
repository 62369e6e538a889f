//! Training a [`TransformerNetwork`] as a language model: next-token
//! cross-entropy at every position, AdamW (decoupled weight decay), optional
//! linear warm-up, cosine decay and global gradient-norm clipping; held-out
//! loss and logits on evaluation windows.
//!
//! Data are plain token rows: `inputs[r]` a window of `n` tokens and
//! `targets[r]` the same window shifted by one (the layout of
//! `tensim_data::Batch`, from `BatchSampler` or `eval_windows`).

use crate::optim::{AdamW, ParamsAdamW};
use crate::snapshot::TrainerState;
use candle_core::{DType, Tensor, D};

use crate::transformer::{check_rows, Ids, TransformerNetwork};
use crate::{Result, TrainError};

/// Windows per forward pass in [`mean_loss`] and [`logits`].
const EVAL_ROWS: usize = 256;

/// Optimiser settings of a language-model run.
#[derive(Clone, Debug, PartialEq)]
pub struct LmConfig {
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay (on every parameter).
    pub weight_decay: f64,
    /// Cosine decay of the learning rate from its value to 0 over each stage.
    pub cosine_decay: bool,
    /// Linear warm-up over the first steps of each stage (0: none).
    pub warmup_steps: u64,
    /// Rescale the gradient to this global L2 norm when it is larger.
    pub grad_clip: Option<f64>,
}

impl Default for LmConfig {
    fn default() -> Self {
        LmConfig {
            learning_rate: 1e-3,
            weight_decay: 0.0,
            cosine_decay: false,
            warmup_steps: 0,
            grad_clip: None,
        }
    }
}

impl LmConfig {
    /// The learning rate at step `t` of a stage of `steps` steps.
    pub fn learning_rate_at(&self, t: u64, steps: u64) -> f64 {
        let mut lr = self.learning_rate;
        if t < self.warmup_steps {
            lr *= (t + 1) as f64 / self.warmup_steps as f64;
        }
        if self.cosine_decay && steps > 0 {
            lr *= 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / steps as f64).cos());
        }
        lr
    }
}

/// What a training step reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LmStepStats {
    /// Mean next-token cross-entropy of the batch (nats), before the update.
    pub loss: f32,
    /// Global L2 norm of the gradient before clipping (when clipping is on).
    pub grad_norm: Option<f32>,
}

/// Mean next-token cross-entropy (nats) of a batch, as a differentiable
/// scalar tensor.
pub fn batch_loss(
    net: &TransformerNetwork,
    inputs: &[Vec<u32>],
    targets: &[Vec<u32>],
) -> Result<Tensor> {
    let (x, y) = batch_tensors(net, inputs, targets)?;
    let logits = net.forward(&x)?;
    let (b, n, vocab) = logits.dims3()?;
    Ok(candle_nn::loss::cross_entropy(
        &logits.reshape((b * n, vocab))?,
        &y.flatten_all()?,
    )?)
}

/// Inputs and targets as `[batch, n]` u32 tensors, checked to match.
fn batch_tensors(
    net: &TransformerNetwork,
    inputs: &[Vec<u32>],
    targets: &[Vec<u32>],
) -> Result<(Tensor, Tensor)> {
    let n = check_rows(inputs, net.shape(), Ids::Tokens("input"))?;
    let m = check_rows(targets, net.shape(), Ids::Targets)?;
    if inputs.len() != targets.len() || n != m {
        return Err(TrainError::Invalid(format!(
            "{} input rows of {n} tokens but {} target rows of {m}",
            inputs.len(),
            targets.len()
        )));
    }
    let flat = |rows: &[Vec<u32>]| rows.iter().flatten().copied().collect::<Vec<u32>>();
    let device = net.device();
    Ok((
        Tensor::from_vec(flat(inputs), (inputs.len(), n), device)?,
        Tensor::from_vec(flat(targets), (targets.len(), n), device)?,
    ))
}

/// Mean next-token cross-entropy (nats) over every window and every
/// position `t ≥ from_position` (0: all positions). To compare with an
/// n-gram model on equal terms pass its first scored position
/// (`tensim_data::NgramModel::first_scored_position`). Sums in f64.
pub fn mean_loss(
    net: &TransformerNetwork,
    inputs: &[Vec<u32>],
    targets: &[Vec<u32>],
    from_position: usize,
) -> Result<f64> {
    let n = check_rows(inputs, net.shape(), Ids::Tokens("input"))?;
    if from_position >= n {
        return Err(TrainError::Invalid(format!(
            "no position t ≥ {from_position} in windows of {n} tokens"
        )));
    }
    if inputs.len() != targets.len() {
        return Err(TrainError::Invalid(format!(
            "{} input rows but {} target rows",
            inputs.len(),
            targets.len()
        )));
    }
    let (mut sum, mut count) = (0.0f64, 0usize);
    for start in (0..inputs.len()).step_by(EVAL_ROWS) {
        let end = (start + EVAL_ROWS).min(inputs.len());
        let (x, y) = batch_tensors(net, &inputs[start..end], &targets[start..end])?;
        let log_p = candle_nn::ops::log_softmax(&net.forward(&x)?, D::Minus1)?;
        let picked = log_p.gather(&y.unsqueeze(2)?, 2)?.squeeze(2)?.narrow(
            1,
            from_position,
            n - from_position,
        )?;
        sum -= picked.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        count += (end - start) * (n - from_position);
    }
    Ok(sum / count as f64)
}

/// Mean cross-entropy (nats) of the last token of each row given the tokens
/// before it: rows of one length `m ≥ 2` (at most `context + 1`), the model
/// reads `row[..m−1]` and is scored at its last position only. This is the
/// loss at position `m` of a sequence, both halves of the paper's n-gram
/// score (`tensim_data::ngram_score`): on the first `n` tokens of held-out
/// sequences and on the most common n-grams of the training data.
pub fn last_token_loss(net: &TransformerNetwork, rows: &[Vec<u32>]) -> Result<f64> {
    let m = rows.first().map_or(0, Vec::len);
    if m < 2 {
        return Err(TrainError::Invalid(format!(
            "rows of {m} tokens have no token to predict from a context"
        )));
    }
    if let Some(r) = rows.iter().find(|r| r.len() != m) {
        return Err(TrainError::Invalid(format!(
            "rows of {} and {m} tokens in one call",
            r.len()
        )));
    }
    let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..m - 1].to_vec()).collect();
    let targets: Vec<Vec<u32>> = rows.iter().map(|r| r[1..].to_vec()).collect();
    mean_loss(net, &inputs, &targets, m - 2)
}

/// Logits of token rows as f32, row-major `[rows, n, vocab]`.
pub fn logits(net: &TransformerNetwork, inputs: &[Vec<u32>]) -> Result<Vec<f32>> {
    check_rows(inputs, net.shape(), Ids::Tokens("input"))?;
    let mut out = Vec::new();
    for chunk in inputs.chunks(EVAL_ROWS) {
        out.extend(net.forward_rows(chunk)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// A network with its optimiser state.
pub struct LmTrainer {
    net: TransformerNetwork,
    optimiser: AdamW,
    config: LmConfig,
    step: u64,
    /// The last step handed to a checkpoint callback (a stage's start is the
    /// previous stage's end: it is saved once).
    last_checkpoint: Option<u64>,
}

impl LmTrainer {
    pub fn new(net: TransformerNetwork, config: LmConfig) -> Result<Self> {
        if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
            return Err(TrainError::Invalid(format!(
                "learning rate must be positive, not {}",
                config.learning_rate
            )));
        }
        if config.grad_clip.is_some_and(|c| c.is_nan() || c <= 0.0) {
            return Err(TrainError::Invalid(
                "gradient clipping needs a positive norm".into(),
            ));
        }
        let params = ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        };
        let optimiser = AdamW::new(net.vars(), params)?;
        Ok(LmTrainer {
            net,
            optimiser,
            config,
            step: 0,
            last_checkpoint: None,
        })
    }

    pub fn network(&self) -> &TransformerNetwork {
        &self.net
    }

    pub fn into_network(self) -> TransformerNetwork {
        self.net
    }

    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// Global step count (over all stages).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The step count and AdamW's moments (the batches come from the
    /// caller's sampler, whose state the caller saves).
    pub fn state(&self) -> Result<TrainerState> {
        Ok(TrainerState {
            step: self.step,
            rng: None,
            adam: self.optimiser.state()?,
        })
    }

    /// A trainer that continues from `state`, taken by [`LmTrainer::state`]
    /// at a checkpoint whose weights `net` holds.
    pub fn resume(net: TransformerNetwork, config: LmConfig, state: &TrainerState) -> Result<Self> {
        let mut trainer = Self::new(net, config)?;
        trainer.optimiser.restore(&state.adam)?;
        trainer.step = state.step;
        trainer.last_checkpoint = Some(state.step);
        Ok(trainer)
    }

    /// One optimiser step on a batch at learning rate `lr`. A non-finite
    /// loss is an error, and the weights stay those before the step.
    pub fn step(
        &mut self,
        inputs: &[Vec<u32>],
        targets: &[Vec<u32>],
        lr: f64,
    ) -> Result<LmStepStats> {
        let loss = batch_loss(&self.net, inputs, targets)?;
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(TrainError::Invalid(format!(
                "training diverged at step {}: loss is {value}",
                self.step + 1
            )));
        }
        let mut grads = loss.backward()?;
        let mut grad_norm = None;
        if let Some(max) = self.config.grad_clip {
            let vars = self.net.vars();
            let squares = vars
                .iter()
                .filter_map(|v| grads.get(v.as_tensor()))
                .map(|g| g.sqr()?.sum_all())
                .collect::<candle_core::Result<Vec<_>>>()?;
            let norm = f64::from(Tensor::stack(&squares, 0)?.sum_all()?.to_scalar::<f32>()?).sqrt();
            if norm > max {
                for v in &vars {
                    if let Some(g) = grads.remove(v.as_tensor()) {
                        grads.insert(v.as_tensor(), g.affine(max / norm, 0.0)?);
                    }
                }
            }
            grad_norm = Some(norm as f32);
        }
        self.optimiser.set_learning_rate(lr);
        self.optimiser.step(&grads)?;
        self.step += 1;
        Ok(LmStepStats {
            loss: value,
            grad_norm,
        })
    }

    /// Runs `steps` steps of one stage at the configured schedule. `sample`
    /// draws each batch as `(inputs, targets)`; at every global step in
    /// `checkpoints` (before the step is taken, and after the last one; never
    /// twice for the same step) `on_checkpoint` sees the network and the
    /// trainer's state; `progress` sees every step. Stops with an error when
    /// the loss is not finite.
    pub fn run_stage(
        &mut self,
        steps: u64,
        checkpoints: &[u64],
        sample: impl FnMut() -> (Vec<Vec<u32>>, Vec<Vec<u32>>),
        on_checkpoint: impl FnMut(u64, &TransformerNetwork, &TrainerState) -> Result<()>,
        progress: impl FnMut(u64, LmStepStats),
    ) -> Result<()> {
        self.run_stage_from(0, steps, checkpoints, sample, on_checkpoint, progress)
    }

    /// [`LmTrainer::run_stage`] entered at step `first` of the stage (a
    /// resumed run).
    pub fn run_stage_from(
        &mut self,
        first: u64,
        steps: u64,
        checkpoints: &[u64],
        mut sample: impl FnMut() -> (Vec<Vec<u32>>, Vec<Vec<u32>>),
        mut on_checkpoint: impl FnMut(u64, &TransformerNetwork, &TrainerState) -> Result<()>,
        mut progress: impl FnMut(u64, LmStepStats),
    ) -> Result<()> {
        for t in first..steps {
            self.checkpoint(checkpoints, &mut on_checkpoint)?;
            let lr = self.config.learning_rate_at(t, steps);
            let (inputs, targets) = sample();
            let stats = self.step(&inputs, &targets, lr)?;
            progress(self.step, stats);
        }
        self.checkpoint(checkpoints, &mut on_checkpoint)
    }

    /// Hands the network and state to `on_checkpoint` if the current step
    /// is in `checkpoints` and was not handed over already.
    fn checkpoint(
        &mut self,
        checkpoints: &[u64],
        on_checkpoint: &mut impl FnMut(u64, &TransformerNetwork, &TrainerState) -> Result<()>,
    ) -> Result<()> {
        if checkpoints.contains(&self.step) && self.last_checkpoint != Some(self.step) {
            let state = self.state()?;
            on_checkpoint(self.step, &self.net, &state)?;
            self.last_checkpoint = Some(self.step);
        }
        Ok(())
    }
}
