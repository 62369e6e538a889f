//! The checkpoint recorder every experiment trains through: each checkpoint
//! is saved under the run's `checkpoints/` (f32, as trained), `metrics.jsonl`
//! is rewritten after every checkpoint (one record a line, the checkpoint's
//! path last), and the trajectory (models and records) stays in memory for
//! the analysis.

use std::path::Path;

use serde::Serialize;
use tensim_core::transformer::Transformer;
use tensim_core::Model;
use tensim_io::{
    save_checkpoint, save_transformer_checkpoint, CheckpointError, CheckpointMeta, StoredDtype,
};
use tensim_train::TrainError;

use crate::run_dir::RunDir;

/// A model the recorder can save as a checkpoint.
pub trait Checkpoint {
    /// Writes `self` to `path` in tensim's format, f32.
    fn save(&self, path: &Path, meta: &CheckpointMeta) -> Result<(), CheckpointError>;
}

impl Checkpoint for Model {
    fn save(&self, path: &Path, meta: &CheckpointMeta) -> Result<(), CheckpointError> {
        save_checkpoint(path, self, meta, StoredDtype::F32)
    }
}

impl Checkpoint for Transformer {
    fn save(&self, path: &Path, meta: &CheckpointMeta) -> Result<(), CheckpointError> {
        save_transformer_checkpoint(path, self, meta, StoredDtype::F32)
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
        }
    }

    /// Starts a series whose files are `checkpoints/{prefix}step-NNNNNN.safetensors`;
    /// the previous series' models should have been taken with [`Self::take_series`].
    pub fn start_series(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
        self.series_start = self.lines.len();
        self.models.clear();
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
        model
            .save(&self.run.path(&file), &meta)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        self.lines.push((record, file));
        self.models.push(model);
        self.write_metrics()
    }

    /// The current series' trajectory; its records stay in `metrics.jsonl`.
    pub fn take_series(&mut self) -> Trajectory<M, R> {
        let own = &self.lines[self.series_start..];
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
