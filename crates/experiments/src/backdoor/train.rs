//! Training of the backdoor experiment: phase A on clean batches, phase B
//! with a share of each batch triggered and relabelled; every checkpoint is
//! evaluated and recorded.

use std::time::Instant;

use std::cell::RefCell;

use anyhow::{Context, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensim_core::{Architecture, LayerShape, Model};
use tensim_data::Split;
use tensim_train::evaluate::{evaluate, predictions};
use tensim_train::trainer::Shuffler;
use tensim_train::{Batch, Network, RunRng, Schedule, TrainConfig, Trainer};

use super::data::{gather, labels_u32, EvalSets};
use super::{Record, Settings};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::resume;
use crate::run_dir::RunDir;

/// The recorded checkpoints and the training time.
pub(super) struct Trained {
    pub trajectory: Trajectory<Model, Record>,
    pub seconds: f64,
    /// Training steps over both phases.
    pub steps: u64,
}

/// One bilinear layer, `dim → hidden → 10`, no biases.
fn architecture(dim: usize, s: &Settings) -> Architecture {
    Architecture {
        layers: vec![LayerShape::bilinear(dim, s.hidden, 10)],
    }
}

fn config(s: &Settings) -> TrainConfig {
    TrainConfig {
        learning_rate: s.learning_rate,
        weight_decay: s.weight_decay,
        batch_size: s.batch_size,
        input_noise: s.input_noise,
        cosine_decay: false,
        seed: s.seed,
    }
}

/// A batch of training images; with probability `rate` each gets the
/// trigger and the target label.
fn sample(
    shuffler: &mut Shuffler,
    rng: &mut RunRng,
    data: &Split,
    trigger: f32,
    s: &Settings,
    rate: f64,
) -> Batch {
    let dim = data.train.dim();
    let idx = shuffler.next_indices(s.batch_size, rng);
    let (mut inputs, mut labels) = gather(&data.train, &idx);
    if rate > 0.0 {
        for (k, label) in labels.iter_mut().enumerate() {
            if rng.random_bool(rate) {
                tensim_data::trigger::stamp_diamond(
                    &mut inputs[k * dim..(k + 1) * dim],
                    data.train.height,
                    data.train.width,
                    trigger,
                )
                .expect("trigger fits: checked on the test set");
                *label = u32::from(s.target_class);
            }
        }
    }
    Batch {
        inputs,
        labels,
        dim,
    }
}

/// Train and test loss and accuracy, and attack success, at one checkpoint.
fn measure(
    net: &Network,
    step: u64,
    data: &Split,
    sets: &EvalSets,
    s: &Settings,
) -> tensim_train::Result<Record> {
    let dim = data.train.dim();
    let train = evaluate(
        net,
        &sets.train_eval.images,
        &labels_u32(&sets.train_eval),
        dim,
    )?;
    let test = evaluate(net, &data.test.images, &labels_u32(&data.test), dim)?;
    let hits = predictions(net, &sets.attack_set.images, dim)?
        .iter()
        .filter(|&&p| p == u32::from(s.target_class))
        .count();
    Ok(Record {
        step,
        phase: if step <= s.steps_clean { "A" } else { "B" }.into(),
        train_loss: train.loss,
        train_accuracy: train.accuracy,
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        attack_success: hits as f64 / sets.attack_set.len().max(1) as f64,
    })
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
    data: &Split,
    s: &Settings,
) -> Result<(Trainer, Recorder<'a, Model, Record>, Shuffler)> {
    if let Some(r) = resume::reopen::<Record, Position>(run)? {
        let trainer = Trainer::resume(r.network, config(s), &r.resumed.trainer)?;
        return Ok((trainer, r.recorder, r.resumed.position.shuffler));
    }
    let device = tensim_train::default_device();
    let net = Network::init(&architecture(data.train.dim(), s), s.seed, &device)?;
    let shuffler = Shuffler::new(data.train.len());
    Ok((Trainer::new(net, config(s))?, Recorder::new(run), shuffler))
}

/// Trains both phases, recording every `checkpoint_every` steps into `run`
/// (continuing an interrupted run where it stopped).
pub(super) fn train(run: &RunDir, data: &Split, sets: &EvalSets, s: &Settings) -> Result<Trained> {
    let (mut trainer, mut recorder, shuffler) = start(run, data, s)?;
    let shuffler = RefCell::new(shuffler);
    let total = s.steps_clean + s.steps_poisoned;
    let schedule = Schedule::Every(s.checkpoint_every).steps(total)?;
    let bar = progress::bar(total, "training");
    bar.inc(trainer.step_count());
    let start = Instant::now();
    let mut phase_start = 0;
    for (phase, steps, rate) in [
        ("A", s.steps_clean, 0.0),
        ("B", s.steps_poisoned, s.poison_rate),
    ] {
        let first = trainer.step_count().saturating_sub(phase_start).min(steps);
        trainer
            .run_stage_from(
                first,
                steps,
                &schedule,
                |rng| sample(&mut shuffler.borrow_mut(), rng, data, sets.trigger, s, rate),
                |step, net, state| {
                    let record = measure(net, step, data, sets, s)?;
                    let phase = Some(record.phase.clone());
                    let label = format!("step {step}");
                    recorder.record(net.to_model()?, step, phase, label, record)?;
                    let shuffler = shuffler.borrow().clone();
                    recorder.snapshot(state, &Position { shuffler })
                },
                |_, st| {
                    bar.inc(1);
                    bar.set_message(format!(
                        "phase {phase} loss {:.3} acc {:.2}",
                        st.loss, st.accuracy
                    ));
                },
            )
            .with_context(|| format!("training phase {phase}"))?;
        phase_start += steps;
    }
    bar.finish_and_clear();
    Ok(Trained {
        seconds: start.elapsed().as_secs_f64(),
        trajectory: recorder.take_series(),
        steps: total,
    })
}
