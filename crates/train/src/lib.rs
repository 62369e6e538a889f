//! # tensim-train
//!
//! Rust-native training of the models tensim compares, with candle (CPU by
//! default, CUDA behind the `cuda` feature). Any [`tensim_core::Architecture`]
//! trains as is: the same parameter names and layout as the checkpoint format,
//! so a trained model converts to a core [`tensim_core::Model`] exactly (up to
//! the f32 → f64 widening) and gives the same logits.
//!
//! * [`network`]: candle parameters and forward pass of an architecture;
//! * [`transformer`]: the same for a bilinear-attention transformer
//!   ([`tensim_core::transformer::Transformer`]) on token sequences;
//! * [`language_model`]: next-token training, held-out loss and logits of a
//!   transformer;
//! * [`trainer`]: AdamW with weight decay, cosine decay, input noise, seeds;
//! * [`snapshot`], [`optim`]: the state a run resumes from, and AdamW
//!   whose moments can be saved;
//! * [`schedule`]: checkpoint steps (every k, a list, power- or log-spaced);
//! * [`evaluate`]: batched loss, accuracy and logits on a data set.

pub mod curriculum;
pub mod evaluate;
mod host;
pub mod language_model;
pub mod network;
pub mod optim;
pub mod schedule;
pub mod snapshot;
pub mod trainer;
pub mod transformer;

pub use candle_core::{Device, Tensor};
pub use language_model::{LmConfig, LmStepStats, LmTrainer};
pub use network::Network;
pub use schedule::Schedule;
pub use snapshot::{run_rng, AdamState, RngState, RunRng, TrainerState};
pub use trainer::{Batch, TrainConfig, Trainer};
pub use transformer::TransformerNetwork;

/// Errors of training: candle's, or the core's when converting weights.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Core(#[from] tensim_core::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// The device to train on: the first CUDA GPU when built with `cuda` and one
/// is present, else the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = Device::cuda_if_available(0) {
            return d;
        }
    }
    Device::Cpu
}
