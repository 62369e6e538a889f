//! Training of the forgetting experiment: the class-incremental curriculum,
//! each stage continuing from the last, checkpointed within and at the end
//! of every stage with per-digit test accuracy.

use std::time::Instant;

use std::cell::RefCell;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tensim_core::{Architecture, LayerShape, Model};
use tensim_data::{ImageSet, Split};
use tensim_train::curriculum::{class_incremental, Stage};
use tensim_train::evaluate::predictions;
use tensim_train::trainer::Shuffler;
use tensim_train::{Batch, Network, RunRng, Schedule, TrainConfig, Trainer, TrainerState};

use super::{Record, Settings};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
use crate::resume::{self, Resumed};
use crate::run_dir::RunDir;

/// The recorded curriculum.
pub(super) struct Trained {
    pub trajectory: Trajectory<Model, Record>,
    pub stages: Vec<Stage>,
    /// Index of each stage's first checkpoint.
    pub stage_first: Vec<usize>,
    /// Training steps of each stage.
    pub stage_steps: Vec<u64>,
    /// Batches between checkpoints within a stage.
    pub checkpoint_every: u64,
    pub seconds: f64,
}

impl Trained {
    /// The checkpoint indices of stage `k`.
    pub fn stage_range(&self, k: usize) -> std::ops::Range<usize> {
        let end = self.stage_first.get(k + 1).copied();
        self.stage_first[k]..end.unwrap_or(self.trajectory.len())
    }
}

/// DeepMLP: embed `dim → embed`, a bilinear MLP, head `embed → 10`; no biases.
fn architecture(dim: usize, s: &Settings) -> Architecture {
    Architecture {
        layers: vec![
            LayerShape::Linear {
                input: dim,
                output: s.embed,
                bias: false,
            },
            LayerShape::bilinear(s.embed, s.hidden, s.embed),
            LayerShape::Linear {
                input: s.embed,
                output: 10,
                bias: false,
            },
        ],
    }
}

/// AdamW with the cosine schedule restarted per stage, no input noise.
fn config(s: &Settings) -> TrainConfig {
    TrainConfig::noiseless(s.learning_rate, s.weight_decay, s.batch_size, s.seed).cosine()
}

/// A batch from one stage's training set.
fn sample(set: &ImageSet, shuffler: &mut Shuffler, rng: &mut RunRng, s: &Settings) -> Batch {
    let dim = set.dim();
    let idx = shuffler.next_indices(s.batch_size, rng);
    let mut inputs = Vec::with_capacity(idx.len() * dim);
    for &i in &idx {
        inputs.extend_from_slice(set.image(i));
    }
    Batch {
        inputs,
        labels: idx.iter().map(|&i| u32::from(set.labels[i])).collect(),
        dim,
    }
}

/// Total and per-digit test accuracy at one checkpoint.
fn measure(
    net: &Network,
    test: &ImageSet,
    step: u64,
    k: usize,
    stage: &Stage,
) -> tensim_train::Result<Record> {
    let labels: Vec<u32> = test.labels.iter().map(|&l| u32::from(l)).collect();
    let pred = predictions(net, &test.images, test.dim())?;
    let mut hits = [0usize; 10];
    let mut counts = [0usize; 10];
    for (p, l) in pred.iter().zip(&labels) {
        counts[*l as usize] += 1;
        if p == l {
            hits[*l as usize] += 1;
        }
    }
    Ok(Record {
        step,
        stage: k,
        stage_name: stage.name.clone(),
        test_accuracy: hits.iter().sum::<usize>() as f64 / labels.len() as f64,
        per_digit_accuracy: (0..10)
            .map(|d| hits[d] as f64 / counts[d].max(1) as f64)
            .collect(),
    })
}

/// Checkpoint steps within a stage of `steps` steps: every `every` batches
/// and at its end; the previous stage's last checkpoint is this one's start.
fn stage_schedule(k: usize, steps: u64, every: u64) -> Result<Vec<u64>> {
    let mut schedule: Vec<u64> = Schedule::Every(every).steps(steps)?;
    if k > 0 {
        schedule.retain(|&t| t != 0);
    }
    schedule.push(steps);
    Ok(schedule)
}

/// Where the run stands besides the trainer: the stage (each stage trains
/// with its own trainer, whose steps count from 0) and its data order.
#[derive(Serialize, Deserialize)]
struct Position {
    stage: usize,
    shuffler: Shuffler,
}

/// The recorder, the weights to continue from and the resume state.
type Start<'a> = (
    Recorder<'a, Model, Record>,
    Network,
    Option<Resumed<Position>>,
);

/// The recorder, and the weights and resume state to continue from: fresh,
/// or those of the interrupted run in `run`.
fn start<'a>(run: &'a RunDir, arch: &Architecture, s: &Settings) -> Result<Start<'a>> {
    if let Some(r) = resume::reopen::<Record, Position>(run)? {
        return Ok((r.recorder, r.network, Some(r.resumed)));
    }
    let net = Network::init(arch, s.seed, &tensim_train::default_device())?;
    Ok((Recorder::new(run), net, None))
}

/// Stage `k`'s trainer, data order and first step: fresh (every stage
/// starts a new AdamW, moments zero, and cosine schedule from the previous
/// stage's weights, as the paper's script does), or the interrupted run's.
fn stage_trainer(
    k: usize,
    net: Network,
    set: &ImageSet,
    resumed: &Option<Resumed<Position>>,
    s: &Settings,
) -> Result<(Trainer, Shuffler, u64)> {
    match resumed {
        Some(r) if r.position.stage == k => {
            let state: &TrainerState = &r.trainer;
            let trainer = Trainer::resume(net, config(s), state)?;
            Ok((trainer, r.position.shuffler.clone(), state.step))
        }
        _ => Ok((Trainer::new(net, config(s))?, Shuffler::new(set.len()), 0)),
    }
}

/// Trains through every stage of the curriculum, recording into `run`
/// (continuing an interrupted run where it stopped).
pub(super) fn train(run: &RunDir, data: &Split, s: &Settings) -> Result<Trained> {
    let train_all = match s.train_images {
        Some(n) => data.train.first(n),
        None => data.train.clone(),
    };
    let arch = architecture(train_all.dim(), s);
    let device = tensim_train::default_device();
    let (mut recorder, mut net, resumed) = start(run, &arch, s)?;
    let stages = class_incremental();
    let stage_sets: Vec<ImageSet> = stages
        .iter()
        .map(|st| train_all.with_classes(&st.classes))
        .collect();
    let stage_steps: Vec<u64> = stage_sets
        .iter()
        .map(|set| {
            ((set.len() as f64 * s.epochs_per_stage / s.batch_size as f64).ceil() as u64).max(1)
        })
        .collect();
    let total: u64 = stage_steps.iter().sum();
    let every = s.checkpoint_every.unwrap_or_else(|| {
        // Each stage adds its end; the rest are spread evenly.
        let spread = s.checkpoints.saturating_sub(stages.len() as u64).max(1);
        total.div_ceil(spread).max(1)
    });
    let first_stage = resumed.as_ref().map_or(0, |r| r.position.stage);
    let bar = progress::bar(total, "training");
    let start = Instant::now();
    let mut offset = 0u64;
    for (k, (stage, set)) in stages.iter().zip(&stage_sets).enumerate() {
        let steps = stage_steps[k];
        if k < first_stage {
            bar.inc(steps);
            offset += steps;
            continue;
        }
        let schedule = stage_schedule(k, steps, every)?;
        let (mut trainer, shuffler, first) = stage_trainer(k, net, set, &resumed, s)?;
        bar.inc(first);
        let shuffler = RefCell::new(shuffler);
        trainer
            .run_stage_from(
                first,
                steps,
                &schedule,
                |rng| sample(set, &mut shuffler.borrow_mut(), rng, s),
                |local, net, state| {
                    let step = offset + local;
                    let record = measure(net, &data.test, step, k, stage)?;
                    let label = format!("{} @{step}", stage.name);
                    let phase = Some(stage.name.clone());
                    recorder.record(net.to_model()?, step, phase, label, record)?;
                    let shuffler = shuffler.borrow().clone();
                    recorder.snapshot(state, &Position { stage: k, shuffler })
                },
                |_, st| {
                    bar.inc(1);
                    bar.set_message(format!("{} loss {:.3}", stage.name, st.loss));
                },
            )
            .with_context(|| format!("training stage {}", stage.name))?;
        net = Network::from_model(&trainer.network().to_model()?, &device)?;
        offset += steps;
    }
    bar.finish_and_clear();
    let trajectory = recorder.take_series();
    let stage_first = (0..stages.len())
        .map(|k| {
            let first = trajectory.records.iter().position(|r| r.stage >= k);
            first.unwrap_or(trajectory.len())
        })
        .collect();
    Ok(Trained {
        seconds: start.elapsed().as_secs_f64(),
        trajectory,
        stages,
        stage_first,
        stage_steps,
        checkpoint_every: every,
    })
}
