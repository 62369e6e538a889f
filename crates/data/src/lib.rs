//! Datasets for tensim: the bundled MNIST and UCI digits, SVHN when the user
//! has its files, and the backdoor trigger; and for the language-model
//! experiment (EXPERIMENTS.md §4), the bundled Shakespeare corpus, a
//! character tokenizer, context-window batches and n-gram baselines.
//!
//! Every image loader returns a [`Split`] of grayscale [`ImageSet`]s with
//! pixels in `[0, 1]`. The bundled files live in the repository's `data/`
//! folder (see `data/README.md` for their provenance and licences);
//! [`load_dataset`] picks an image dataset by name, [`load_text_dataset`] a
//! text corpus.

pub mod bpe;
pub mod char_tokenizer;
pub mod digits;
pub mod error;
pub mod idx;
pub mod image_set;
pub mod mat;
pub mod mnist;
pub mod ngram;
mod read;
pub mod shakespeare;
pub mod svhn;
pub mod token_stream;
mod tokenizer_json;
pub mod trigger;

use std::path::{Path, PathBuf};

pub use bpe::BpeTokenizer;
pub use char_tokenizer::{CharTokenizer, MAX_VOCAB, UNK_CHAR, UNK_ID};
pub use digits::load_digits;
pub use error::DataError;
pub use idx::{read_idx_images, read_idx_labels};
pub use image_set::{ImageSet, Split};
pub use mnist::load_mnist;
pub use ngram::{kneser_ney_ratio, most_common_ngrams, ngram_score, NgramModel, Smoothing};
pub use shakespeare::{load_shakespeare, load_text_dataset, TEXT_DATASET_NAMES};
pub use svhn::load_svhn;
pub use token_stream::{
    eval_windows, split_train_val, Batch, BatchSampler, TokenSplit, DEFAULT_VAL_FRACTION,
};
pub use trigger::{stamp_diamond, trigger_value};

/// The names [`load_dataset`] accepts.
pub const DATASET_NAMES: [&str; 3] = ["mnist", "digits", "svhn"];

/// The environment variable that overrides [`bundled_data_dir`].
pub const DATA_DIR_ENV: &str = "TENSIM_DATA_DIR";

/// The folder of the bundled datasets: `$TENSIM_DATA_DIR` when set (and not
/// empty), else the repository's `data/` folder.
pub fn bundled_data_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data")),
    }
}

/// Loads a dataset by name: `"mnist"` (from `bundled_data_dir()/mnist`),
/// `"digits"` (from `bundled_data_dir()/digits/digits.csv.gz`) or `"svhn"`
/// (from `svhn_dir`, which it then requires; see [`load_svhn`]).
pub fn load_dataset(name: &str, svhn_dir: Option<&Path>) -> Result<Split, DataError> {
    match name {
        "mnist" => load_mnist(&bundled_data_dir().join("mnist")),
        "digits" => load_digits(&bundled_data_dir().join("digits").join("digits.csv.gz")),
        "svhn" => match svhn_dir {
            Some(dir) => load_svhn(dir),
            None => Err(DataError::SvhnDirRequired),
        },
        _ => Err(DataError::UnknownDataset {
            name: name.to_string(),
        }),
    }
}
