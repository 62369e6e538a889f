//! # tensim-io
//!
//! Files of tensim: self-describing safetensors checkpoints ([`checkpoint`];
//! transformers and loading either kind in [`transformer_checkpoint`]),
//! similarity matrices as CSV or NPY ([`matrix_file`]), written atomically
//! ([`atomic`]) so that a failed run never leaves a half-written file.

pub mod arch_spec;
pub mod atomic;
pub mod checkpoint;
pub mod foreign;
pub mod matrix_file;
mod residual_json;
pub mod transformer_checkpoint;

pub use arch_spec::{load_models, step_from_name, ArchSpec, LayerSpec, SpecError};
pub use checkpoint::{
    load_checkpoint, save_checkpoint, Checkpoint, CheckpointError, CheckpointMeta, StoredDtype,
};
pub use foreign::{read_tensor_sets, NamedTensor, TensorSet};
pub use matrix_file::{read_matrix, write_matrix, MatrixFileError};
pub use transformer_checkpoint::{
    load_any_checkpoint, load_transformer_checkpoint, save_transformer_checkpoint, AnyCheckpoint,
    AnyModel, TransformerCheckpoint,
};
