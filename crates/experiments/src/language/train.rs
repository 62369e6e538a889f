//! Training of one language model (1 or 2 layers): log-spaced checkpoints
//! with held-out losses and n-gram scores, recorded by the run's recorder.

use std::cell::Cell;
use std::time::Instant;

use anyhow::{Context, Result};
use tensim_core::transformer::{AttentionBias, BlockShape, Transformer, TransformerShape};
use tensim_core::Residual;
use tensim_data::{kneser_ney_ratio, ngram_score, BatchSampler};
use tensim_train::language_model::{last_token_loss, mean_loss, LmConfig, LmTrainer};
use tensim_train::TransformerNetwork;

use super::inputs::Inputs;
use super::{Record, Settings};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};

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

/// Trains the `layers`-layer model, its checkpoints a new series of `recorder`.
pub(super) fn train(
    recorder: &mut Recorder<Transformer, Record>,
    s: &Settings,
    schedule: &[u64],
    inputs: &Inputs,
    layers: usize,
) -> Result<Trained> {
    let shape = shape(s, layers);
    let device = tensim_train::default_device();
    let net = TransformerNetwork::init(&shape, s.seed + layers as u64, &device)?;
    let mut trainer = LmTrainer::new(net, config(s))?;
    let mut sampler = BatchSampler::new(&inputs.train, s.context, s.seed + 17 * layers as u64);
    recorder.start_series(&format!("{layers}-layer-"));
    let last_loss = Cell::new(f64::NAN);
    let bar = progress::bar(s.steps, &format!("{layers}-layer"));
    let start = Instant::now();
    trainer
        .run_stage(
            s.steps,
            schedule,
            || {
                let b = sampler.next_batch(s.batch_size);
                (b.inputs, b.targets)
            },
            |step, net| {
                let record = measure(net, inputs, layers, step, last_loss.get());
                let phase = Some(format!("{layers}-layer"));
                recorder.record(
                    net.to_transformer()?,
                    step,
                    phase,
                    format!("step {step}"),
                    record,
                )
            },
            |_, st| {
                last_loss.set(f64::from(st.loss));
                bar.inc(1);
                bar.set_message(format!("loss {:.3}", st.loss));
            },
        )
        .context("training")?;
    bar.finish_and_clear();
    Ok(Trained {
        layers,
        shape,
        seconds: start.elapsed().as_secs_f64(),
        trajectory: recorder.take_series(),
    })
}
