//! Training of the forgetting experiment: the class-incremental curriculum,
//! each stage continuing from the last, checkpointed within and at the end
//! of every stage with per-digit test accuracy.

use std::time::Instant;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use tensim_core::{Architecture, LayerShape, Model};
use tensim_data::{ImageSet, Split};
use tensim_train::curriculum::{class_incremental, Stage};
use tensim_train::evaluate::predictions;
use tensim_train::trainer::Shuffler;
use tensim_train::{Batch, Network, Schedule, TrainConfig, Trainer};

use super::{Record, Settings};
use crate::progress;
use crate::recorder::{Recorder, Trajectory};
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
fn sample(set: &ImageSet, shuffler: &mut Shuffler, rng: &mut StdRng, s: &Settings) -> Batch {
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

/// Trains through every stage of the curriculum, recording into `run`.
pub(super) fn train(run: &RunDir, data: &Split, s: &Settings) -> Result<Trained> {
    let train_all = match s.train_images {
        Some(n) => data.train.first(n),
        None => data.train.clone(),
    };
    let arch = architecture(train_all.dim(), s);
    let device = tensim_train::default_device();
    let mut net = Network::init(&arch, s.seed, &device)?;
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
    let mut recorder: Recorder<Model, Record> = Recorder::new(run);
    let mut stage_first: Vec<usize> = Vec::new();
    let mut recorded = 0usize;
    let bar = progress::bar(total, "training");
    let start = Instant::now();
    let mut offset = 0u64;
    for (k, (stage, set)) in stages.iter().zip(&stage_sets).enumerate() {
        let steps = stage_steps[k];
        // Every stage starts a fresh AdamW (moments zero) and cosine schedule
        // from the previous stage's weights, as the paper's script does.
        let schedule = stage_schedule(k, steps, every)?;
        stage_first.push(recorded);
        let mut trainer = Trainer::new(net, config(s))?;
        let mut shuffler = Shuffler::new(set.len());
        trainer
            .run_stage(
                steps,
                &schedule,
                |rng| sample(set, &mut shuffler, rng, s),
                |local, net| {
                    let step = offset + local;
                    let record = measure(net, &data.test, step, k, stage)?;
                    recorded += 1;
                    let label = format!("{} @{step}", stage.name);
                    let phase = Some(stage.name.clone());
                    recorder.record(net.to_model()?, step, phase, label, record)
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
    Ok(Trained {
        seconds: start.elapsed().as_secs_f64(),
        trajectory: recorder.take_series(),
        stages,
        stage_first,
        stage_steps,
        checkpoint_every: every,
    })
}
