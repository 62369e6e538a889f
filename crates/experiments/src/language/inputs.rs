//! The language experiment's data: the tokenized corpus split into training
//! and held-out text, the n-gram baselines, and the input sets shared by all
//! checkpoints' output cosines.

use rand::SeedableRng;
use tensim_core::monte_carlo::gaussian_inputs;
use tensim_core::Mat;
use tensim_data::{eval_windows, most_common_ngrams, Batch, NgramModel, Smoothing};

use super::Settings;

/// Everything the models are trained and measured on.
pub(super) struct Inputs {
    /// Training tokens.
    pub train: Vec<u32>,
    /// Held-out windows the losses are measured on.
    pub windows: Batch,
    /// Held-out cross-entropy of the 2-, 3- and 4-gram Kneser–Ney models.
    pub ngram_losses: [f64; 3],
    /// For n = 2, 3, 4: the first n tokens of held-out sequences (the
    /// paper's `l_test(n)` is the model's loss on their last token).
    pub heldout_prefixes: [Vec<Vec<u32>>; 3],
    /// For n = 2, 3, 4: the most common n-grams of the training tokens (the
    /// paper's `l_gram(n)` is the model's loss on their last token).
    pub common_ngrams: [Vec<Vec<u32>>; 3],
    /// One-hot held-out windows for the output cosines.
    pub text: Vec<Mat<f64>>,
    /// Gaussian sequences (N(0, I) in token space) for the output cosines.
    pub gaussian: Vec<Mat<f64>>,
}

fn one_hot(tokens: &[u32], vocab: usize) -> Mat<f64> {
    Mat::from_fn(tokens.len(), vocab, |p, j| {
        if tokens[p] as usize == j {
            1.0
        } else {
            0.0
        }
    })
}

impl Inputs {
    /// Fits the n-gram models on the training tokens (with a note on
    /// stderr), picks the held-out windows and sequences and draws the
    /// shared input sets.
    pub fn new(train: Vec<u32>, val: &[u32], s: &Settings) -> Self {
        let windows = eval_windows(val, s.context, Some(s.eval_windows));
        eprintln!("fitting 2-, 3- and 4-gram models (Kneser–Ney) on the training text…");
        let ngram_losses: [f64; 3] = [2, 3, 4].map(|n| {
            NgramModel::fit(&train, n, s.vocab, Smoothing::KneserNey).mean_cross_entropy(&windows)
        });
        // Sequences of 4 held-out tokens at evenly spaced starts.
        let stride = (val.len() / s.ngram_sequences).max(4);
        let sequences: Vec<&[u32]> = val.chunks_exact(4).step_by(stride / 4).collect();
        let heldout_prefixes = [2, 3, 4].map(|n| {
            sequences
                .iter()
                .take(s.ngram_sequences)
                .map(|q| q[..n].to_vec())
                .collect()
        });
        let common_ngrams = [2, 3, 4].map(|n| {
            most_common_ngrams(&train, n, s.common_ngrams)
                .into_iter()
                .map(|(g, _)| g)
                .collect()
        });
        let text_inputs: Vec<Mat<f64>> = windows
            .inputs
            .iter()
            .take(s.gaussian_samples)
            .map(|w| one_hot(w, s.vocab))
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(s.seed ^ 0x5eed);
        let gaussian: Vec<Mat<f64>> = (0..s.gaussian_samples)
            .map(|_| gaussian_inputs(s.context, s.vocab, &mut rng))
            .collect();
        Inputs {
            train,
            windows,
            ngram_losses,
            heldout_prefixes,
            common_ngrams,
            text: text_inputs,
            gaussian,
        }
    }
}
