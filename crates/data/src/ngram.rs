//! n-gram language models of a token stream: the baselines of the n-gram
//! score of EXPERIMENTS.md §4.
//!
//! An [`NgramModel`] of order `n` predicts a token from the `n − 1` tokens
//! before it, with one of two smoothings ([`Smoothing`]):
//!
//! - **add-k**: `P(w | h) = (c(h w) + k) / (c(h) + k·V)`, where `c` counts
//!   occurrences in the training stream, `c(h) = Σ_w c(h w)` and `V` is the
//!   vocabulary size (a context never seen gives the uniform `1/V`);
//! - **interpolated Kneser–Ney** (Chen & Goodman 1998, one discount per
//!   order): `P_m(w | h) = max(c_m(h w) − D_m, 0) / c_m(h) + D_m · N_m(h •) /
//!   c_m(h) · P_{m−1}(w | h')`, where `h'` drops the oldest token of `h`,
//!   `N_m(h •)` is the number of distinct `w` with `c_m(h w) > 0`, and a
//!   context with `c_m(h) = 0` passes `P_{m−1}` through unchanged. At the
//!   highest order in use, `c_m` is the ordinary count; below it, `c_m(g)` is
//!   the continuation count `N(• g)`, the number of distinct tokens seen
//!   right before the m-gram `g`. The recursion ends in the uniform
//!   distribution, `P_0(w) = 1/V`. `D_m = n1 / (n1 + 2·n2)` (Ney, Essen &
//!   Kneser 1994), with `n1` and `n2` the numbers of m-grams whose (ordinary
//!   or continuation) count is 1 and 2, clamped into `[0.05, 0.95]`.
//!
//! Both are proper distributions over the `V` ids for every context. A
//! context shorter than `n − 1` tokens (only possible through
//! [`NgramModel::distribution`] and [`NgramModel::prob`]) is scored by the
//! model of order `len + 1`, i.e. by the counts of the shorter n-grams.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::token_stream::{eval_windows, Batch};

/// The add-k constant of [`Smoothing::default_add_k`].
pub const DEFAULT_ADD_K: f64 = 0.01;

/// Largest context index (`V^(m−1)` entries) kept as a direct lookup table
/// rather than a hash map.
const DIRECT_INDEX_LIMIT: u64 = 1 << 20;

/// Marks a context without a row in a direct index.
const NO_ROW: u32 = u32::MAX;

/// Lower and upper bound of the estimated Kneser–Ney discounts.
const DISCOUNT_RANGE: (f64, f64) = (0.05, 0.95);

/// How an [`NgramModel`] turns counts into probabilities (formulas in the
/// [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Smoothing {
    /// Add `k` to every count (`k > 0`).
    AddK {
        /// The pseudo-count added to each (context, token) pair.
        k: f64,
    },
    /// Interpolated Kneser–Ney with one estimated discount per order.
    KneserNey,
}

impl Smoothing {
    /// Add-k with `k =` [`DEFAULT_ADD_K`] (0.01).
    pub fn default_add_k() -> Self {
        Smoothing::AddK { k: DEFAULT_ADD_K }
    }
}

/// A hasher for the `u64` context codes: a SplitMix64 finaliser, much
/// cheaper than SipHash and good enough for keys that are not adversarial.
#[derive(Default, Clone, Copy)]
struct CodeHasher(u64);

impl Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).rotate_left(5);
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// Where the row of a context code lives.
#[derive(Clone, Debug)]
enum RowIndex {
    /// `index[code]` is the row, or [`NO_ROW`].
    Direct(Vec<u32>),
    /// For context spaces too large to index directly.
    Hashed(HashMap<u64, u32, BuildHasherDefault<CodeHasher>>),
}

/// Counts of m-grams, one row of `V` counts per seen context of `m − 1`
/// tokens. Contexts are coded base `V`, oldest token most significant.
#[derive(Clone, Debug)]
struct CountTable {
    vocab: usize,
    index: RowIndex,
    /// `rows × V` counts, row-major.
    counts: Vec<u32>,
    /// Sum of each row.
    totals: Vec<u64>,
    /// Number of non-zero entries of each row.
    distinct: Vec<u32>,
}

impl CountTable {
    /// An empty table for contexts of `m − 1` tokens (`contexts = V^(m−1)`).
    fn new(vocab: usize, contexts: u64) -> Self {
        let index = if contexts <= DIRECT_INDEX_LIMIT {
            RowIndex::Direct(vec![NO_ROW; contexts as usize])
        } else {
            RowIndex::Hashed(HashMap::default())
        };
        CountTable {
            vocab,
            index,
            counts: Vec::new(),
            totals: Vec::new(),
            distinct: Vec::new(),
        }
    }

    /// The row of context `code`, if it was seen.
    fn row(&self, code: u64) -> Option<usize> {
        match &self.index {
            RowIndex::Direct(index) => match index[code as usize] {
                NO_ROW => None,
                row => Some(row as usize),
            },
            RowIndex::Hashed(map) => map.get(&code).map(|&row| row as usize),
        }
    }

    /// The row of context `code`, created (all zero) if new.
    fn row_or_insert(&mut self, code: u64) -> usize {
        let next = (self.counts.len() / self.vocab) as u32;
        let row = match &mut self.index {
            RowIndex::Direct(index) => {
                let slot = &mut index[code as usize];
                if *slot == NO_ROW {
                    *slot = next;
                }
                *slot
            }
            RowIndex::Hashed(map) => *map.entry(code).or_insert(next),
        };
        if row == next {
            self.counts.resize(self.counts.len() + self.vocab, 0);
        }
        row as usize
    }

    /// Adds one to the count of token `w` after context `code`.
    fn increment(&mut self, code: u64, w: u32) {
        let row = self.row_or_insert(code);
        self.counts[row * self.vocab + w as usize] += 1;
    }

    /// Fills `totals` and `distinct` (call once all counts are in).
    fn finish(&mut self) {
        let rows = self.counts.chunks_exact(self.vocab);
        self.totals = rows
            .clone()
            .map(|r| r.iter().map(|&c| u64::from(c)).sum())
            .collect();
        self.distinct = rows
            .map(|r| r.iter().filter(|&&c| c > 0).count() as u32)
            .collect();
    }

    /// Every row with its context code, in no particular order.
    fn rows(&self) -> Vec<(u64, &[u32])> {
        let row_slice = |row: u32| {
            let start = row as usize * self.vocab;
            &self.counts[start..start + self.vocab]
        };
        match &self.index {
            RowIndex::Direct(index) => index
                .iter()
                .enumerate()
                .filter(|&(_, &row)| row != NO_ROW)
                .map(|(code, &row)| (code as u64, row_slice(row)))
                .collect(),
            RowIndex::Hashed(map) => map
                .iter()
                .map(|(&code, &row)| (code, row_slice(row)))
                .collect(),
        }
    }

    /// Ney's discount `n1 / (n1 + 2·n2)`, clamped into [`DISCOUNT_RANGE`].
    fn ney_discount(&self) -> f64 {
        let n1 = self.counts.iter().filter(|&&c| c == 1).count() as f64;
        let n2 = self.counts.iter().filter(|&&c| c == 2).count() as f64;
        let d = if n1 + 2.0 * n2 > 0.0 {
            n1 / (n1 + 2.0 * n2)
        } else {
            DISCOUNT_RANGE.1
        };
        d.clamp(DISCOUNT_RANGE.0, DISCOUNT_RANGE.1)
    }
}

/// An n-gram model of a token stream (see the [module docs](self) for the
/// probabilities).
#[derive(Clone, Debug)]
pub struct NgramModel {
    order: usize,
    vocab_size: usize,
    smoothing: Smoothing,
    /// `raw[m − 1]`: ordinary counts of m-grams, `m = 1..=order`.
    raw: Vec<CountTable>,
    /// Kneser–Ney only: `continuation[m − 1]`, `m = 1..order`, the
    /// continuation counts `N(• g)` of m-grams `g`.
    continuation: Vec<CountTable>,
    /// Kneser–Ney discounts of `raw` (same indexing).
    raw_discounts: Vec<f64>,
    /// Kneser–Ney discounts of `continuation` (same indexing).
    continuation_discounts: Vec<f64>,
}

impl NgramModel {
    /// Counts the m-grams (`m = 1..=order`) of the training stream `tokens`
    /// (ids `< vocab_size`), overlapping, from the first token on, and
    /// prepares `smoothing`.
    ///
    /// One pass over the stream per order; the contexts of up to 2^20
    /// codes are indexed directly, larger ones through a hash map.
    ///
    /// # Panics
    /// If `order` is 0, `vocab_size` is 0, `vocab_size^(order−1)` does not
    /// fit in `u64`, a token is `≥ vocab_size`, or add-k has `k ≤ 0` (or
    /// not finite).
    pub fn fit(tokens: &[u32], order: usize, vocab_size: usize, smoothing: Smoothing) -> Self {
        assert!(order >= 1, "an n-gram model needs order n >= 1");
        assert!(vocab_size >= 1, "the vocabulary must not be empty");
        let vocab = vocab_size as u64;
        assert!(
            vocab.checked_pow(order as u32).is_some(),
            "vocab_size^order = {vocab_size}^{order} does not fit in 64 bits"
        );
        if let Smoothing::AddK { k } = smoothing {
            assert!(
                k > 0.0 && k.is_finite(),
                "add-k needs a finite k > 0, got {k}"
            );
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab_size) {
            panic!("token id {bad} is outside the vocabulary of {vocab_size}");
        }
        let raw: Vec<CountTable> = (1..=order)
            .map(|m| count_ngrams(tokens, m, vocab))
            .collect();
        let mut continuation = Vec::new();
        if smoothing == Smoothing::KneserNey {
            for m in 1..order {
                // Each distinct (m+1)-gram (a, g) adds one to N(• g).
                let mut table = CountTable::new(vocab_size, vocab.pow(m as u32 - 1));
                let lower_contexts = vocab.pow(m as u32 - 1);
                for (code, row) in raw[m].rows() {
                    for (w, &c) in row.iter().enumerate() {
                        if c > 0 {
                            table.increment(code % lower_contexts, w as u32);
                        }
                    }
                }
                table.finish();
                continuation.push(table);
            }
        }
        let (raw_discounts, continuation_discounts) = match smoothing {
            Smoothing::KneserNey => (
                raw.iter().map(CountTable::ney_discount).collect(),
                continuation.iter().map(CountTable::ney_discount).collect(),
            ),
            Smoothing::AddK { .. } => (Vec::new(), Vec::new()),
        };
        NgramModel {
            order,
            vocab_size,
            smoothing,
            raw,
            continuation,
            raw_discounts,
            continuation_discounts,
        }
    }

    /// The order `n` (the model conditions on `n − 1` tokens).
    pub fn order(&self) -> usize {
        self.order
    }

    /// The number of token ids `V`.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The smoothing the model was fitted with.
    pub fn smoothing(&self) -> Smoothing {
        self.smoothing
    }

    /// The Kneser–Ney discounts `D_m` of the ordinary counts, `m =
    /// 1..=order` (empty for add-k).
    pub fn discounts(&self) -> &[f64] {
        &self.raw_discounts
    }

    /// The context the model uses: the last `min(len, order − 1)` tokens.
    fn history<'c>(&self, context: &'c [u32]) -> &'c [u32] {
        &context[context.len().saturating_sub(self.order - 1)..]
    }

    /// Base-V code of `tokens`, oldest most significant.
    fn code(&self, tokens: &[u32]) -> u64 {
        tokens.iter().fold(0u64, |code, &t| {
            assert!(
                (t as usize) < self.vocab_size,
                "token id {t} is outside the vocabulary of {}",
                self.vocab_size
            );
            code * self.vocab_size as u64 + u64::from(t)
        })
    }

    /// For Kneser–Ney at level `m` of a history whose top level is `top`:
    /// the table, its discount and the row of the last `m − 1` tokens of
    /// `history` (if that context was seen).
    fn kn_level(&self, history: &[u32], m: usize, top: usize) -> (&CountTable, f64, Option<usize>) {
        let (table, discount) = if m == top {
            (&self.raw[m - 1], self.raw_discounts[m - 1])
        } else {
            (
                &self.continuation[m - 1],
                self.continuation_discounts[m - 1],
            )
        };
        let row = table.row(self.code(&history[history.len() - (m - 1)..]));
        (table, discount, row)
    }

    /// `P(token | context)`: the probability of `token` after the last
    /// `order − 1` tokens of `context` (fewer if `context` is shorter; see
    /// the [module docs](self)). Equals `distribution(context)[token]`.
    ///
    /// # Panics
    /// If `token` or a context token is `≥ vocab_size`.
    pub fn prob(&self, context: &[u32], token: u32) -> f64 {
        let v = self.vocab_size;
        assert!(
            (token as usize) < v,
            "token id {token} is outside the vocabulary of {v}"
        );
        let w = token as usize;
        let history = self.history(context);
        match self.smoothing {
            Smoothing::AddK { k } => {
                let table = &self.raw[history.len()];
                let (c, total) = match table.row(self.code(history)) {
                    Some(row) => (table.counts[row * v + w], table.totals[row]),
                    None => (0, 0),
                };
                (f64::from(c) + k) / (total as f64 + k * v as f64)
            }
            Smoothing::KneserNey => {
                let top = history.len() + 1;
                let mut p = 1.0 / v as f64;
                for m in 1..=top {
                    let (table, d, row) = self.kn_level(history, m, top);
                    if let Some(row) = row {
                        let total = table.totals[row] as f64;
                        let c = f64::from(table.counts[row * v + w]);
                        let backoff = d * f64::from(table.distinct[row]) / total;
                        p = (c - d).max(0.0) / total + backoff * p;
                    }
                }
                p
            }
        }
    }

    /// The model's full next-token distribution after `context` (its last
    /// `order − 1` tokens; fewer if `context` is shorter): `V`
    /// probabilities, each `> 0`, summing to 1, indexed by token id — to set
    /// beside a neural model's softmax at the same position.
    ///
    /// # Panics
    /// If a context token is `≥ vocab_size`.
    pub fn distribution(&self, context: &[u32]) -> Vec<f64> {
        let v = self.vocab_size;
        let history = self.history(context);
        match self.smoothing {
            Smoothing::AddK { k } => {
                let table = &self.raw[history.len()];
                let denominator = |total: u64| total as f64 + k * v as f64;
                match table.row(self.code(history)) {
                    Some(row) => {
                        let z = denominator(table.totals[row]);
                        table.counts[row * v..(row + 1) * v]
                            .iter()
                            .map(|&c| (f64::from(c) + k) / z)
                            .collect()
                    }
                    None => vec![1.0 / v as f64; v],
                }
            }
            Smoothing::KneserNey => {
                let top = history.len() + 1;
                let mut p = vec![1.0 / v as f64; v];
                for m in 1..=top {
                    let (table, d, row) = self.kn_level(history, m, top);
                    if let Some(row) = row {
                        let total = table.totals[row] as f64;
                        let backoff = d * f64::from(table.distinct[row]) / total;
                        let counts = &table.counts[row * v..(row + 1) * v];
                        for (pw, &c) in p.iter_mut().zip(counts) {
                            *pw = (f64::from(c) - d).max(0.0) / total + backoff * *pw;
                        }
                    }
                }
                p
            }
        }
    }

    /// The first position of a window that
    /// [`mean_cross_entropy`](Self::mean_cross_entropy) scores: `n − 2` for
    /// `n ≥ 2` (the first with `n − 1` tokens of context inside the window),
    /// 0 for `n = 1`.
    pub fn first_scored_position(&self) -> usize {
        self.order.saturating_sub(2)
    }

    /// Mean next-token cross-entropy, in nats, on held-out windows:
    /// the mean of `−ln P(targets[r][t] | inputs[r][..=t])` over every row
    /// `r` and every position `t ≥` [`first_scored_position`](Self::first_scored_position),
    /// i.e. only where the window itself holds the `n − 1` tokens of context
    /// (nothing is borrowed from before the window). NaN when no position
    /// is scored.
    ///
    /// To compare a neural model with it on equal terms, average the neural
    /// model's loss over the same positions.
    pub fn mean_cross_entropy(&self, windows: &Batch) -> f64 {
        let first = self.first_scored_position();
        let mut sum = 0.0;
        let mut count = 0usize;
        for (inputs, targets) in windows.inputs.iter().zip(&windows.targets) {
            for t in first..targets.len() {
                sum -= self.prob(&inputs[..=t], targets[t]).ln();
                count += 1;
            }
        }
        sum / count as f64
    }

    /// [`mean_cross_entropy`](Self::mean_cross_entropy) on the evaluation
    /// windows of a held-out stream, `eval_windows(tokens, context, None)`
    /// (windows of `context` tokens at stride `context`).
    pub fn held_out_cross_entropy(&self, tokens: &[u32], context: usize) -> f64 {
        self.mean_cross_entropy(&eval_windows(tokens, context, None))
    }
}

/// The ordinary counts of the m-grams of `tokens` (every start position
/// with a full m-gram).
fn count_ngrams(tokens: &[u32], m: usize, vocab: u64) -> CountTable {
    let contexts = vocab.pow(m as u32 - 1);
    let mut table = CountTable::new(vocab as usize, contexts);
    // `code` holds the last min(i, m − 1) tokens before position i.
    let mut code = 0u64;
    for (i, &w) in tokens.iter().enumerate() {
        if i + 1 >= m {
            table.increment(code, w);
        }
        code = (code * vocab + u64::from(w)) % contexts;
    }
    table.finish();
    table
}

/// The ratio of a model's held-out loss to that of a Kneser–Ney n-gram
/// model of the corpus on the same held-out text (both mean next-token
/// cross-entropies in nats, e.g. the n-gram one from
/// [`NgramModel::mean_cross_entropy`]). Below 1: the model beats the n-gram
/// model. This is tensim's own measure, not the paper's n-gram score
/// (that one is [`ngram_score`]).
pub fn kneser_ney_ratio(model_loss: f64, ngram_loss: f64) -> f64 {
    model_loss / ngram_loss
}

/// The n-gram score of the tensor-similarity paper (EXPERIMENTS.md §4):
/// `l_test(n) / l_gram(n)`, where
///
/// - `l_test(n)` is the model's mean cross-entropy of the n-th token of
///   held-out sequences given the `n − 1` tokens before it (the loss at
///   position `n` of a sequence), and
/// - `l_gram(n)` is the model's mean cross-entropy of the last token of the
///   most common n-grams of the training data ([`most_common_ngrams`], the
///   paper takes 1,000) given their first `n − 1` tokens.
///
/// Both losses are the model's own; no n-gram model enters. The score
/// starts near 1 (an untrained model is as unsure about common n-grams as
/// about any text) and rises as the model learns the common n-grams better
/// than text in general: higher is better. The paper's final values are
/// 1.11, 2.06 and 2.37 for n = 2, 3, 4.
pub fn ngram_score(test_loss: f64, common_ngram_loss: f64) -> f64 {
    test_loss / common_ngram_loss
}

/// The `k` most frequent n-grams (every start position of `tokens` with a
/// full n-gram counts once) with their counts, most frequent first; ties
/// are broken by the n-gram itself in ascending lexicographic order, so the
/// result is deterministic. Fewer than `k` when fewer distinct n-grams
/// occur.
///
/// # Panics
/// If `n` is 0.
pub fn most_common_ngrams(tokens: &[u32], n: usize, k: usize) -> Vec<(Vec<u32>, usize)> {
    assert!(n > 0, "an n-gram has at least one token");
    let mut counts: HashMap<&[u32], usize> = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    let mut ranked: Vec<(&[u32], usize)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(k)
        .map(|(g, c)| (g.to_vec(), c))
        .collect()
}
