//! The checkpoint recorder every experiment trains through: each checkpoint
//! is saved under the run's `checkpoints/` (f32, as trained), `metrics.jsonl`
//! is rewritten after every checkpoint (one record a line, the checkpoint's
//! path last), and the trajectory (models and records) stays in memory for
//! the analysis. With [`Recorder::snapshot`] the trainer's state follows
//! each checkpoint into `resume.safetensors` ([`crate::resume`]), and
//! [`Recorder::reopen`] picks an interrupted run's checkpoints up again.

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tensim_core::network::Network;
use tensim_core::transformer::Transformer;
use tensim_core::Model;
use tensim_io::{load_checkpoint, save_checkpoint, CheckpointMeta, StoredDtype};
use tensim_train::{TrainError, TrainerState};

use crate::resume::{self, Resumed};
use crate::run_dir::RunDir;

/// A model the recorder can save as a checkpoint and read back: a network
/// of either kind.
pub trait Checkpoint: Clone + Into<Network> {
    /// The model a loaded checkpoint holds, if it is of this kind.
    fn from_network(network: Network) -> Option<Self>;
}

impl Checkpoint for Model {
    fn from_network(network: Network) -> Option<Self> {
        network.into_sequential().ok()
    }
}

impl Checkpoint for Transformer {
    fn from_network(network: Network) -> Option<Self> {
        network.into_transformer().ok()
    }
}

/// One line of `metrics.jsonl`: the experiment's record, then its checkpoint.
#[derive(Serialize)]
struct Line<'a, R> {
    #[serde(flatten)]
    record: &'a R,
    checkpoint: &'a str,
}

/// The checkpoints of one training series, in order.
pub struct Trajectory<M, R> {
    pub models: Vec<M>,
    pub records: Vec<R>,
    /// Each checkpoint's file, relative to the run directory.
    pub files: Vec<String>,
}

impl<M, R> Trajectory<M, R> {
    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Saves checkpoints and metrics into a run directory and keeps the trajectory.
pub struct Recorder<'a, M, R> {
    run: &'a RunDir,
    /// File-name prefix of the current series (e.g. `1-layer-`).
    prefix: String,
    /// Every record of the run with its checkpoint file: `metrics.jsonl`.
    lines: Vec<(R, String)>,
    /// Where the current series starts in `lines`.
    series_start: usize,
    models: Vec<M>,
    /// The models of a reopened run's lines, handed to their series.
    restored: Vec<Option<M>>,
}

impl<'a, M: Checkpoint, R: Serialize + Clone> Recorder<'a, M, R> {
    /// A recorder writing `checkpoints/step-NNNNNN.safetensors`.
    pub fn new(run: &'a RunDir) -> Self {
        Recorder {
            run,
            prefix: String::new(),
            lines: Vec::new(),
            series_start: 0,
            models: Vec::new(),
            restored: Vec::new(),
        }
    }

    /// The recorder of an interrupted run: its first `checkpoints` lines of
    /// `metrics.jsonl` and their checkpoint files (lines a crash left after
    /// the resume state are dropped; their files are written again).
    pub fn reopen(run: &'a RunDir, checkpoints: usize) -> anyhow::Result<Self>
    where
        R: DeserializeOwned,
    {
        let path = run.path("metrics.jsonl");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut recorder = Self::new(run);
        for line in text.lines().take(checkpoints) {
            let mut value: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: a line is not JSON", path.display()))?;
            let file = value
                .as_object_mut()
                .and_then(|o| o.remove("checkpoint"))
                .and_then(|f| f.as_str().map(str::to_string))
                .with_context(|| format!("{}: a line names no checkpoint", path.display()))?;
            let record: R = serde_json::from_value(value)
                .with_context(|| format!("{}: a line is not a record", path.display()))?;
            let network = load_checkpoint(&run.path(&file))?.network;
            let model = M::from_network(network)
                .with_context(|| format!("{file} holds another kind of network"))?;
            recorder.lines.push((record, file));
            recorder.restored.push(Some(model));
        }
        recorder.start_series("");
        if recorder.lines.len() != checkpoints {
            anyhow::bail!(
                "{} has {} records, the resume state {checkpoints}",
                path.display(),
                recorder.lines.len()
            );
        }
        Ok(recorder)
    }

    /// Saves the trainer's `state` and the experiment's `position` at the
    /// checkpoint just recorded, for `--resume`.
    pub fn snapshot<S: Serialize>(
        &self,
        state: &TrainerState,
        position: &S,
    ) -> tensim_train::Result<()> {
        let resumed = Resumed {
            checkpoints: self.lines.len(),
            trainer: state.clone(),
            position,
        };
        resume::save(self.run, &resumed).map_err(|e| TrainError::Invalid(format!("{e:#}")))
    }

    /// Starts a series whose files are `checkpoints/{prefix}step-NNNNNN.safetensors`;
    /// the previous series' models should have been taken with [`Self::take_series`].
    /// A reopened run's checkpoints of this series are taken up again.
    pub fn start_series(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
        let own = format!("checkpoints/{prefix}step-");
        let mine = |i: usize| self.lines[i].1.starts_with(&own);
        let n = self.lines.len();
        self.series_start = (0..n).find(|&i| mine(i)).unwrap_or(n);
        let end = (self.series_start..n).find(|&i| !mine(i)).unwrap_or(n);
        self.models = (self.series_start..end)
            .filter_map(|i| self.restored.get_mut(i).and_then(Option::take))
            .collect();
    }

    /// The current series' last checkpoint (where a resumed run continues).
    pub fn last(&self) -> Option<&M> {
        self.models.last()
    }

    /// Saves `model` as the checkpoint of `step`, appends `record` to
    /// `metrics.jsonl` and keeps both; for use inside training callbacks.
    pub fn record(
        &mut self,
        model: M,
        step: u64,
        phase: Option<String>,
        label: String,
        record: R,
    ) -> tensim_train::Result<()> {
        let file = format!("checkpoints/{}step-{step:06}.safetensors", self.prefix);
        let meta = CheckpointMeta {
            step: Some(step),
            phase,
            label: Some(label),
        };
        let network: Network = model.clone().into();
        save_checkpoint(&self.run.path(&file), &network, &meta, StoredDtype::F32)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        self.lines.push((record, file));
        self.models.push(model);
        self.write_metrics()
    }

    /// The current series' trajectory; its records stay in `metrics.jsonl`.
    pub fn take_series(&mut self) -> Trajectory<M, R> {
        let own = &self.lines[self.series_start..self.series_start + self.models.len()];
        let trajectory = Trajectory {
            models: std::mem::take(&mut self.models),
            records: own.iter().map(|(r, _)| r.clone()).collect(),
            files: own.iter().map(|(_, f)| f.clone()).collect(),
        };
        self.series_start = self.lines.len();
        trajectory
    }

    fn write_metrics(&self) -> tensim_train::Result<()> {
        let mut text = String::new();
        for (record, file) in &self.lines {
            let line = Line {
                record,
                checkpoint: file,
            };
            text += &serde_json::to_string(&line).expect("records are plain data");
            text.push('\n');
        }
        self.run
            .write_text("metrics.jsonl", &text)
            .map(|_| ())
            .map_err(|e| TrainError::Invalid(e.to_string()))
    }
}

/// Reads a number that was written from an `f64`: JSON has no NaN, so
/// serde_json writes NaN as `null`, read back here as NaN.
pub fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}
