//! Progress bars on stderr: the experiments crate's helpers, shared with the
//! CLI's own commands.

pub use tensim_experiments::progress::{bar, JobBars};
