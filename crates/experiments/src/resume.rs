//! The state an interrupted experiment continues from (`--resume`): after
//! every checkpoint the run directory's `resume.safetensors` holds how many
//! checkpoints were recorded, the trainer's state at that checkpoint (step,
//! random stream, AdamW's moments as f32 tensors) and the experiment's own
//! position (stage, shuffler, sampler) as JSON metadata. It is replaced
//! atomically, so it always describes one recorded checkpoint, and removed
//! when the run completes.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tensim_io::atomic::write_atomic;
use tensim_train::{AdamState, RngState, TrainerState};

use crate::recorder::Recorder;
use crate::run_dir::RunDir;

/// The file, relative to the run directory.
pub const FILE: &str = "resume.safetensors";

/// Where an interrupted run stood at its last checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Resumed<S> {
    /// Checkpoints recorded (lines of `metrics.jsonl` to keep).
    pub checkpoints: usize,
    pub trainer: TrainerState,
    /// The experiment's own position.
    pub position: S,
}

/// The JSON part of the file.
#[derive(Serialize, Deserialize)]
struct Header<S> {
    checkpoints: usize,
    step: u64,
    rng: Option<RngState>,
    adam_t: u64,
    position: S,
}

/// Writes `resume.safetensors` into `run` (atomically).
pub fn save<S: Serialize>(run: &RunDir, resumed: &Resumed<&S>) -> Result<()> {
    let t = &resumed.trainer;
    let header = Header {
        checkpoints: resumed.checkpoints,
        step: t.step,
        rng: t.rng.clone(),
        adam_t: t.adam.t,
        position: resumed.position,
    };
    let bytes: Vec<(String, Vec<u8>, usize)> =
        [("first", &t.adam.first), ("second", &t.adam.second)]
            .iter()
            .flat_map(|(name, moments)| {
                moments.iter().enumerate().map(move |(k, m)| {
                    let raw = m.iter().flat_map(|v| v.to_le_bytes()).collect();
                    (format!("{name}.{k}"), raw, m.len())
                })
            })
            .collect();
    let views = bytes
        .iter()
        .map(|(name, raw, n)| Ok((name.clone(), TensorView::new(Dtype::F32, vec![*n], raw)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("resume".to_string(), serde_json::to_string(&header)?)]);
    let file = safetensors::serialize(views, Some(metadata))?;
    let path = run.path(FILE);
    write_atomic(&path, |w: &mut dyn Write| w.write_all(&file))
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads `resume.safetensors` from `run`, if the run has one.
pub fn load<S: DeserializeOwned>(run: &RunDir) -> Result<Option<Resumed<S>>> {
    let path = run.path(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let read = || -> Result<Resumed<S>> {
        let bytes = std::fs::read(&path)?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)?;
        let text = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("resume"))
            .context("no `resume` metadata")?;
        let header: Header<S> = serde_json::from_str(text)?;
        let tensors = SafeTensors::deserialize(&bytes)?;
        let moments = |name: &str| -> Result<Vec<Vec<f32>>> {
            let mut out = Vec::new();
            while let Ok(view) = tensors.tensor(&format!("{name}.{}", out.len())) {
                if view.dtype() != Dtype::F32 {
                    bail!("{name}.{} is not f32", out.len());
                }
                out.push(
                    view.data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                );
            }
            Ok(out)
        };
        Ok(Resumed {
            checkpoints: header.checkpoints,
            trainer: TrainerState {
                step: header.step,
                rng: header.rng,
                adam: AdamState {
                    t: header.adam_t,
                    first: moments("first")?,
                    second: moments("second")?,
                },
            },
            position: header.position,
        })
    };
    read()
        .map(Some)
        .with_context(|| format!("{} is not a resume state", path.display()))
}

/// An interrupted run of a sequential model, reopened: its recorder, its
/// resume state and the network of its last checkpoint on the training
/// device (where training continues).
pub struct Reopened<'a, R, P> {
    pub recorder: Recorder<'a, tensim_core::Model, R>,
    pub resumed: Resumed<P>,
    pub network: tensim_train::Network,
}

/// The interrupted run in `run`, if it has a resume state.
pub fn reopen<'a, R, P>(run: &'a RunDir) -> Result<Option<Reopened<'a, R, P>>>
where
    R: Serialize + DeserializeOwned + Clone,
    P: DeserializeOwned,
{
    let Some(resumed) = load::<P>(run)? else {
        return Ok(None);
    };
    let recorder = Recorder::reopen(run, resumed.checkpoints)?;
    let last = recorder
        .last()
        .context("the resume state has no checkpoint")?;
    let network = tensim_train::Network::from_model(last, &tensim_train::default_device())?;
    Ok(Some(Reopened {
        recorder,
        resumed,
        network,
    }))
}
