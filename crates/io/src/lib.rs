//! # tensim-io
//!
//! Files of tensim: self-describing safetensors checkpoints of any network
//! ([`checkpoint`], shapes as JSON in [`shape_json`]), foreign checkpoints
//! mapped by an architecture spec ([`arch_spec`], [`transformer_spec`],
//! [`foreign`]) or by a published run's `config.json` ([`published`]), similarity
//! matrices as CSV or NPY ([`matrix_file`]), all written atomically
//! ([`atomic`]) so that a failed run never leaves a half-written file.

pub mod arch_spec;
pub mod atomic;
pub mod checkpoint;
pub mod foreign;
pub mod matrix_file;
pub mod npy;
pub mod pairs_file;
pub mod pickle;
pub mod published;
pub mod pytorch;
pub mod raw;
pub mod shape_json;
pub mod transformer_spec;

pub use arch_spec::{
    load_models, spec_for, step_from_name, ArchSpec, BilinearSpec, LayerSpec, Mapped, SpecError,
};
pub use checkpoint::{
    claims_tensim_format, load_checkpoint, save_checkpoint, Checkpoint, CheckpointError,
    CheckpointMeta, StoredDtype,
};
pub use foreign::{read_tensor_sets, read_tensor_sets_with, NamedTensor, TensorSet};
pub use matrix_file::{read_matrix, write_matrix, write_table, MatrixFileError};
pub use pickle::Limits;
