//! A bounded pickle reader of our own: it parses, it never executes.
//!
//! PyTorch checkpoints are pickles, and a pickle is a program. tensim reads
//! it as data: [`parse`] runs the opcodes of protocols 0–5 on a flat loop,
//! records calls instead of making them, shares objects by index (so the
//! memo cannot multiply memory), and refuses the file the moment the stream
//! names a global outside the caller's allowlist, even one the result would
//! not use. Everything it may allocate is capped by [`Limits`].

mod machine;
mod value;

pub use machine::{parse, Allowlist};
pub use value::{Graph, Id, Value};

/// Caps on what reading one file may cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Size of one pickle in bytes.
    pub max_pickle_bytes: u64,
    /// Objects one pickle may create.
    pub max_objects: usize,
    /// Entries on the pickle machine's stack.
    pub max_stack: usize,
    /// Memo entries.
    pub max_memo: usize,
    /// Bytes of tensor data a file may make tensim hold: storages read plus
    /// the f64 values built from them.
    pub max_tensor_bytes: u64,
    /// Nesting of dicts whose entries are read as tensor names.
    pub max_depth: usize,
}

impl Default for Limits {
    /// Generous for any checkpoint tensim can compare (a state dict's
    /// pickle is kilobytes to megabytes; the paper's largest model holds
    /// 10 MB of weights), small enough that no file can exhaust a laptop.
    fn default() -> Self {
        Limits {
            max_pickle_bytes: 256 << 20,
            max_objects: 16 << 20,
            max_stack: 1 << 20,
            max_memo: 4 << 20,
            max_tensor_bytes: 16 << 30,
            max_depth: 64,
        }
    }
}

/// Why a pickle was not read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PickleError {
    #[error(
        "the pickle references `{module}.{name}`, which is not part of a PyTorch state dict; \
         tensim never executes pickled code and refuses such files (save `model.state_dict()` instead)"
    )]
    Forbidden { module: String, name: String },
    #[error("the pickle ends early (at byte {at})")]
    Truncated { at: usize },
    #[error("unknown pickle opcode 0x{op:02x} at byte {at}")]
    UnknownOpcode { op: u8, at: usize },
    #[error("malformed pickle at byte {at}: {what}")]
    Malformed { at: usize, what: String },
    #[error("the pickle needs more than {limit} {what}, tensim's limit for one file")]
    Limit { what: &'static str, limit: usize },
}
