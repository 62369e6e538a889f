//! Training of the grokking experiment: a fixed random split of all `(a, b)`
//! pairs, one-hot encoded, train and validation loss at every checkpoint.

use std::time::Instant;

use std::cell::RefCell;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tensim_core::{Architecture, LayerShape, Model};
use tensim_train::evaluate::evaluate;
use tensim_train::trainer::Shuffler;
use tensim_train::{Batch, Network, RunRng, TrainConfig, Trainer};

use super::{Record, Settings};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::resume;
use crate::run_dir::RunDir;

/// The recorded checkpoints and the training time.
pub(super) struct Trained {
    pub trajectory: Trajectory<Model, Record>,
    pub seconds: f64,
}

/// Encoded inputs (`n × 2p`, row-major) and labels.
struct Encoded {
    x: Vec<f32>,
    y: Vec<u32>,
}

/// `one-hot(a) ⊕ one-hot(b)` rows and `(a + b) mod p` labels for the given pairs.
fn encode(pairs: &[(usize, usize)], p: usize) -> Encoded {
    let mut x = vec![0.0f32; pairs.len() * 2 * p];
    for (row, &(a, b)) in pairs.iter().enumerate() {
        x[row * 2 * p + a] = 1.0;
        x[row * 2 * p + p + b] = 1.0;
    }
    Encoded {
        x,
        y: pairs.iter().map(|&(a, b)| ((a + b) % p) as u32).collect(),
    }
}

/// The training and validation sets: all pairs shuffled with the seed,
/// the first `train_fraction` for training.
fn split(s: &Settings) -> (Encoded, Encoded) {
    let p = s.modulus;
    let mut pairs: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    pairs.shuffle(&mut StdRng::seed_from_u64(s.seed));
    let n_train = (pairs.len() as f64 * s.train_fraction).round() as usize;
    (encode(&pairs[..n_train], p), encode(&pairs[n_train..], p))
}

/// One bilinear layer `2p → hidden → p`, no biases.
fn architecture(s: &Settings) -> Architecture {
    Architecture {
        layers: vec![LayerShape::bilinear(2 * s.modulus, s.hidden, s.modulus)],
    }
}

/// AdamW at a constant learning rate, no input noise.
fn config(s: &Settings) -> TrainConfig {
    TrainConfig::noiseless(s.learning_rate, s.weight_decay, s.batch_size, s.seed)
}

/// A batch of training pairs.
fn sample(train: &Encoded, shuffler: &mut Shuffler, rng: &mut RunRng, s: &Settings) -> Batch {
    let dim = 2 * s.modulus;
    let idx = shuffler.next_indices(s.batch_size, rng);
    let mut inputs = Vec::with_capacity(idx.len() * dim);
    for &i in &idx {
        inputs.extend_from_slice(&train.x[i * dim..(i + 1) * dim]);
    }
    Batch {
        inputs,
        labels: idx.iter().map(|&i| train.y[i]).collect(),
        dim,
    }
}

/// Where the run stands besides the trainer: the data order.
#[derive(Serialize, Deserialize)]
struct Position {
    shuffler: Shuffler,
}

/// The trainer, recorder and data order to train with: fresh, or those of
/// the interrupted run in `run` (its resume state).
fn start<'a>(
    run: &'a RunDir,
    s: &Settings,
    examples: usize,
) -> Result<(Trainer, Recorder<'a, Model, Record>, Shuffler)> {
    if let Some(r) = resume::reopen::<Record, Position>(run)? {
        let trainer = Trainer::resume(r.network, config(s), &r.resumed.trainer)?;
        return Ok((trainer, r.recorder, r.resumed.position.shuffler));
    }
    let device = tensim_train::default_device();
    let net = Network::init(&architecture(s), s.seed, &device)?;
    let shuffler = Shuffler::new(examples);
    Ok((Trainer::new(net, config(s))?, Recorder::new(run), shuffler))
}

/// Trains for `s.steps`, recording at the `schedule` steps into `run`
/// (continuing an interrupted run where it stopped).
pub(super) fn train(run: &RunDir, s: &Settings, schedule: &[u64]) -> Result<Trained> {
    let (train, val) = split(s);
    let dim = 2 * s.modulus;
    let (mut trainer, mut recorder, shuffler) = start(run, s, train.y.len())?;
    let shuffler = RefCell::new(shuffler);
    let bar = progress::bar(s.steps, "training");
    bar.inc(trainer.step_count());
    let start = Instant::now();
    trainer
        .run_stage_from(
            trainer.step_count().min(s.steps),
            s.steps,
            schedule,
            |rng| sample(&train, &mut shuffler.borrow_mut(), rng, s),
            |step, net, state| {
                let t = evaluate(net, &train.x, &train.y, dim)?;
                let v = evaluate(net, &val.x, &val.y, dim)?;
                let record = Record {
                    step,
                    train_loss: t.loss,
                    train_accuracy: t.accuracy,
                    validation_loss: v.loss,
                    validation_accuracy: v.accuracy,
                };
                recorder.record(net.to_model()?, step, None, format!("step {step}"), record)?;
                let shuffler = shuffler.borrow().clone();
                recorder.snapshot(state, &Position { shuffler })
            },
            |_, st| {
                bar.inc(1);
                bar.set_message(format!("loss {:.3}", st.loss));
            },
        )
        .context("training")?;
    bar.finish_and_clear();
    Ok(Trained {
        seconds: start.elapsed().as_secs_f64(),
        trajectory: recorder.take_series(),
    })
}
