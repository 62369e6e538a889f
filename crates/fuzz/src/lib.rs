//! # tensim-fuzz
//!
//! Mutation fuzzing of every loader tensim exposes to files from strangers
//! (issue 16), on stable Rust: tensim's own safetensors checkpoints, plain
//! safetensors, PyTorch zip and legacy `.pt`, `.npz`, TOML architecture
//! specs applied to real checkpoints, and MATLAB `.mat` (SVHN). Each
//! [`targets::Target`] has a seed corpus of real files; a
//! [`campaign::run`] mutates them for a time budget and saves any input that
//! panics or is refused without naming its file. Saved inputs go into
//! `regressions/<target>/`, which every test run replays.
//!
//! `cargo test -p tensim-fuzz` runs each target for `TENSIM_FUZZ_SECONDS`
//! (default 4) seconds; `cargo run --release -p tensim-fuzz -- --seconds 60`
//! runs longer campaigns and prints executions per target.

pub mod campaign;
pub mod mutate;
pub mod targets;

use std::path::{Path, PathBuf};

/// The regression corpus of `target`: inputs that once failed.
pub fn regressions(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}
