//! The language experiment's data: the tokenized corpus split into training
//! and held-out text, the n-gram baselines, and the input sets shared by all
//! checkpoints' output cosines.

use rand::SeedableRng;
use tensim_core::monte_carlo::gaussian_inputs;
use tensim_core::Mat;
use tensim_data::{eval_windows, split_train_val, Batch, CharTokenizer, NgramModel, Smoothing};

use super::Settings;

/// Everything the models are trained and measured on.
pub(super) struct Inputs {
    /// Training tokens.
    pub train: Vec<u32>,
    /// Held-out windows the losses are measured on.
    pub windows: Batch,
    /// Held-out cross-entropy of the 2-, 3- and 4-gram models.
    pub ngram_losses: [f64; 3],
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
    /// Tokenizes and splits `text`, fits the n-gram models (with a note on
    /// stderr) and draws the shared input sets.
    pub fn new(text: &str, tokenizer: &CharTokenizer, s: &Settings) -> Self {
        let tokens = tokenizer.encode(text);
        let split = split_train_val(&tokens, 0.1);
        let windows = eval_windows(&split.val, s.context, Some(s.eval_windows));
        eprintln!("fitting 2-, 3- and 4-gram models (Kneser–Ney) on the training text…");
        let ngram_losses: [f64; 3] = [2, 3, 4].map(|n| {
            NgramModel::fit(&split.train, n, s.vocab, Smoothing::KneserNey)
                .mean_cross_entropy(&windows)
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
            train: split.train,
            windows,
            ngram_losses,
            text: text_inputs,
            gaussian,
        }
    }
}
