//! A token stream cut for language-model training: a fixed train/validation
//! split, random context windows for training and fixed windows for
//! evaluation. Everything is plain `Vec<u32>`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// The share of the stream [`split_train_val`] holds out by default.
pub const DEFAULT_VAL_FRACTION: f64 = 0.1;

/// A token stream cut in two: `train` is the first part, `val` the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSplit {
    /// The first `len − val.len()` tokens.
    pub train: Vec<u32>,
    /// The last `round(len · val_fraction)` tokens.
    pub val: Vec<u32>,
}

/// Splits `tokens` deterministically: the last `round(len · val_fraction)`
/// tokens are the validation stream, everything before them the training
/// stream (no shuffling, so no window straddles the two).
///
/// # Panics
/// If `val_fraction` is not in `[0, 1]`.
pub fn split_train_val(tokens: &[u32], val_fraction: f64) -> TokenSplit {
    assert!(
        (0.0..=1.0).contains(&val_fraction),
        "val_fraction must be in [0, 1], got {val_fraction}"
    );
    let val_len = ((tokens.len() as f64) * val_fraction).round() as usize;
    let cut = tokens.len() - val_len.min(tokens.len());
    TokenSplit {
        train: tokens[..cut].to_vec(),
        val: tokens[cut..].to_vec(),
    }
}

/// Rows of context windows: `inputs[r]` is `context` consecutive tokens
/// and `targets[r]` the same window shifted by one, so `targets[r][t]` is
/// the token that follows `inputs[r][..=t]`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Batch {
    /// One row of `context` input tokens per window.
    pub inputs: Vec<Vec<u32>>,
    /// One row of `context` next tokens per window.
    pub targets: Vec<Vec<u32>>,
}

impl Batch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Appends the window of `tokens` that starts at `start`.
    fn push_window(&mut self, tokens: &[u32], start: usize, context: usize) {
        self.inputs.push(tokens[start..start + context].to_vec());
        self.targets
            .push(tokens[start + 1..start + context + 1].to_vec());
    }
}

/// Draws training batches of random context windows from a token stream
/// with a seeded ChaCha12 generator (`rand`'s `StdRng`): the same stream,
/// context and seed give the same sequence of batches, and a sampler rebuilt
/// with [`BatchSampler::with_rng`] from a saved [`BatchSampler::rng`]
/// continues where the saved one was.
#[derive(Clone, Debug)]
pub struct BatchSampler<'a> {
    tokens: &'a [u32],
    context: usize,
    rng: ChaCha12Rng,
}

impl<'a> BatchSampler<'a> {
    /// A sampler of windows of `context` tokens from `tokens`, seeded by
    /// `seed`.
    ///
    /// # Panics
    /// If `context` is 0 or `tokens` has fewer than `context + 1` tokens
    /// (one window and its last target).
    pub fn new(tokens: &'a [u32], context: usize, seed: u64) -> Self {
        Self::with_rng(tokens, context, ChaCha12Rng::seed_from_u64(seed))
    }

    /// A sampler drawing from `rng` (as [`BatchSampler::new`], same panics).
    pub fn with_rng(tokens: &'a [u32], context: usize, rng: ChaCha12Rng) -> Self {
        assert!(context > 0, "context must be at least 1 token");
        assert!(
            tokens.len() > context,
            "a stream of {} tokens is too short for windows of {context} tokens plus a target",
            tokens.len()
        );
        BatchSampler {
            tokens,
            context,
            rng,
        }
    }

    /// The random stream, at the position of the next batch.
    pub fn rng(&self) -> &ChaCha12Rng {
        &self.rng
    }

    /// The window length.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The next `batch_size` windows: each starts at a position drawn
    /// uniformly from `0..=len − context − 1` (independently, with
    /// replacement); see [`Batch`] for the layout.
    pub fn next_batch(&mut self, batch_size: usize) -> Batch {
        let last_start = self.tokens.len() - self.context - 1;
        let mut batch = Batch::default();
        for _ in 0..batch_size {
            let start = self.rng.random_range(0..=last_start);
            batch.push_window(self.tokens, start, self.context);
        }
        batch
    }
}

/// The fixed evaluation windows of `tokens`: windows of `context` tokens
/// starting at `0, context, 2·context, …` while the window and its last
/// target fit, so every token after the first of the covered stretch is a
/// target exactly once. At most `max_windows` windows when given.
///
/// # Panics
/// If `context` is 0.
pub fn eval_windows(tokens: &[u32], context: usize, max_windows: Option<usize>) -> Batch {
    assert!(context > 0, "context must be at least 1 token");
    let mut batch = Batch::default();
    let mut start = 0;
    while start + context < tokens.len() && max_windows.is_none_or(|m| batch.len() < m) {
        batch.push_window(tokens, start, context);
        start += context;
    }
    batch
}
