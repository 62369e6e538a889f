//! The checkpoint recorder every experiment trains through: each checkpoint
//! is saved under the run's `checkpoints/` (f32, as trained), `metrics.jsonl`
//! is rewritten after every checkpoint (one record a line, the checkpoint's
//! path last), and the trajectory (models and records) stays in memory for
//! the analysis.

use serde::Serialize;
use tensim_core::network::Network;
use tensim_io::{save_checkpoint, CheckpointMeta, StoredDtype};
use tensim_train::TrainError;

use crate::run_dir::RunDir;

/// A model the recorder can save as a checkpoint: a network of either kind.
pub trait Checkpoint: Clone + Into<Network> {}

impl<M: Clone + Into<Network>> Checkpoint for M {}

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
        let network: Network = model.clone().into();
        save_checkpoint(&self.run.path(&file), &network, &meta, StoredDtype::F32)
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
