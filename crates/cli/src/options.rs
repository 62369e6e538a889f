//! Options that `compare` and `matrix` share: how the metrics are evaluated.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Floating-point type the metrics run in.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Precision {
    /// Reference path.
    F64,
    /// Fast path (normalised, never overflows).
    F32,
}

impl From<Precision> for tensim_core::metric::Precision {
    fn from(p: Precision) -> Self {
        match p {
            Precision::F64 => tensim_core::metric::Precision::F64,
            Precision::F32 => tensim_core::metric::Precision::F32,
        }
    }
}

/// How the metrics are evaluated (`compare` and `matrix`).
#[derive(Args, Clone, Debug)]
pub struct MetricArgs {
    /// Inputs (n×d f64 .npy) for output cosine and CKA on data (sequential models).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Monte-Carlo samples for the sampled Gaussian estimate (0 to skip in compare).
    #[arg(long, default_value_t = 20_000)]
    pub samples: usize,
    /// Gaussian input positions for transformer checkpoints (default 4, at most the context).
    #[arg(long)]
    pub positions: Option<usize>,
    /// Seed of the Monte-Carlo samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
}
