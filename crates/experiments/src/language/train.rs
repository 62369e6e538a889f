//! Training of one language model (1 or 2 layers): log-spaced checkpoints
//! with held-out losses and n-gram scores, recorded by the run's recorder.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tensim_core::transformer::{AttentionBias, BlockShape, Transformer, TransformerShape};
use tensim_core::Residual;
use tensim_data::{kneser_ney_ratio, ngram_score, BatchSampler};
use tensim_train::language_model::{last_token_loss, mean_loss, LmConfig, LmTrainer};
use tensim_train::{RngState, TransformerNetwork};

use super::inputs::Inputs;
use super::{Record, Settings};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::resume::Resumed;

/// One model's recorded checkpoints.
pub(super) struct Trained {
    pub layers: usize,
    pub shape: TransformerShape,
    pub trajectory: Trajectory<Transformer, Record>,
    pub seconds: f64,
}

/// The paper's family (`TransformerShape::paper`, MATH.md §1.9): causal,
/// rotary, attention-only bilinear blocks with biases on q/k only, added to
/// the stream as `x + s·attention(x)`.
fn shape(s: &Settings, layers: usize) -> TransformerShape {
    let block = BlockShape::attention_only(AttentionBias::QK, Residual::Add(s.attention_scale));
    let heads = (s.heads, s.head_dim);
    TransformerShape::causal(s.vocab, s.d_model, heads, s.context, vec![block; layers])
}

fn config(s: &Settings) -> LmConfig {
    LmConfig {
        learning_rate: s.learning_rate,
        weight_decay: s.weight_decay,
        cosine_decay: true,
        warmup_steps: s.warmup_steps,
        grad_clip: Some(1.0),
    }
}

/// Held-out losses, the paper's n-gram scores and the Kneser–Ney ratios at
/// one checkpoint.
fn measure(
    net: &TransformerNetwork,
    inputs: &Inputs,
    layers: usize,
    step: u64,
    train_loss: f64,
) -> Record {
    let w = &inputs.windows;
    let heldout =
        [0usize, 1, 2].map(|k| mean_loss(net, &w.inputs, &w.targets, k).unwrap_or(f64::NAN));
    let loss_on = |rows: &[Vec<u32>]| last_token_loss(net, rows).unwrap_or(f64::NAN);
    let position_loss = [0, 1, 2].map(|k| loss_on(&inputs.heldout_prefixes[k]));
    let common_ngram_loss = [0, 1, 2].map(|k| loss_on(&inputs.common_ngrams[k]));
    Record {
        layers,
        step,
        train_loss,
        heldout_loss: heldout,
        ngram_scores: [0, 1, 2].map(|k| ngram_score(position_loss[k], common_ngram_loss[k])),
        position_loss,
        common_ngram_loss,
        kn_ratio: [0, 1, 2].map(|k| kneser_ney_ratio(heldout[k], inputs.ngram_losses[k])),
    }
}

/// Where the run stands besides the trainer: which model trains, and the
/// position of its batch sampler's random stream.
#[derive(Serialize, Deserialize)]
pub(super) struct Position {
    layers: usize,
    sampler: RngState,
}

/// The `layers`-layer model's trainer and sampler: fresh, or the
/// interrupted run's (`None` when that run had finished this model).
fn start<'a>(
    recorder: &Recorder<Transformer, Record>,
    s: &Settings,
    inputs: &'a Inputs,
    layers: usize,
    resumed: Option<&Resumed<Position>>,
) -> Result<Option<(LmTrainer, BatchSampler<'a>)>> {
    let device = tensim_train::default_device();
    let train = &inputs.train;
    match resumed {
        Some(r) if r.position.layers > layers => Ok(None),
        Some(r) if r.position.layers == layers => {
            let last = recorder
                .last()
                .context("the resume state has no checkpoint")?;
            let net = TransformerNetwork::from_transformer(last, &device)?;
            let trainer = LmTrainer::resume(net, config(s), &r.trainer)?;
            let rng = r.position.sampler.rng()?;
            Ok(Some((
                trainer,
                BatchSampler::with_rng(train, s.context, rng),
            )))
        }
        _ => {
            let net = TransformerNetwork::init(&shape(s, layers), s.seed + layers as u64, &device)?;
            let seed = s.seed + 17 * layers as u64;
            let sampler = BatchSampler::new(train, s.context, seed);
            Ok(Some((LmTrainer::new(net, config(s))?, sampler)))
        }
    }
}

/// Trains the `layers`-layer model, its checkpoints a new series of
/// `recorder` (continuing an interrupted run where it stopped).
pub(super) fn train(
    recorder: &mut Recorder<Transformer, Record>,
    s: &Settings,
    schedule: &[u64],
    inputs: &Inputs,
    layers: usize,
    resumed: Option<&Resumed<Position>>,
) -> Result<Trained> {
    recorder.start_series(&format!("{layers}-layer-"));
    let start = Instant::now();
    if let Some((mut trainer, sampler)) = self::start(recorder, s, inputs, layers, resumed)? {
        let sampler = RefCell::new(sampler);
        let last_loss = Cell::new(f64::NAN);
        let bar = progress::bar(s.steps, &format!("{layers}-layer"));
        bar.inc(trainer.step_count());
        trainer
            .run_stage_from(
                trainer.step_count().min(s.steps),
                s.steps,
                schedule,
                || {
                    let b = sampler.borrow_mut().next_batch(s.batch_size);
                    (b.inputs, b.targets)
                },
                |step, net, state| {
                    let record = measure(net, inputs, layers, step, last_loss.get());
                    let phase = Some(format!("{layers}-layer"));
                    let label = format!("step {step}");
                    recorder.record(net.to_transformer()?, step, phase, label, record)?;
                    let sampler = RngState::of(sampler.borrow().rng());
                    recorder.snapshot(state, &Position { layers, sampler })
                },
                |_, st| {
                    last_loss.set(f64::from(st.loss));
                    bar.inc(1);
                    bar.set_message(format!("loss {:.3}", st.loss));
                },
            )
            .context("training")?;
        bar.finish_and_clear();
    }
    Ok(Trained {
        layers,
        shape: shape(s, layers),
        seconds: start.elapsed().as_secs_f64(),
        trajectory: recorder.take_series(),
    })
}
