//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `len` steps of `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Bars for a matrix job ([`tensim_core::metric::MatrixJob`]): one for the
/// per-model work, one for the pairs.
pub struct JobBars {
    models: ProgressBar,
    pairs: ProgressBar,
}

impl JobBars {
    /// Bars for `models` models and their `models·(models+1)/2` pairs.
    pub fn new(models: usize) -> Self {
        Self::with_pairs(models, models * (models + 1) / 2)
    }

    /// Bars for `models` models and `pairs` pairs (a shard's share).
    pub fn with_pairs(models: usize, pairs: usize) -> Self {
        let multi = indicatif::MultiProgress::new();
        JobBars {
            models: multi.add(bar(models as u64, "models")),
            pairs: multi.add(bar(pairs as u64, "pairs")),
        }
    }

    /// Clears both bars.
    pub fn finish(&self) {
        self.models.finish_and_clear();
        self.pairs.finish_and_clear();
    }
}

impl tensim_core::metric::MatrixProgress for JobBars {
    fn model_prepared(&self) {
        self.models.inc(1);
    }
    fn pair_done(&self) {
        self.pairs.inc(1);
    }
}
