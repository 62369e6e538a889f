//! The one error type of this crate.
//!
//! Every message is a single line that names the file (or dataset), says
//! what is wrong with it and how to fix it.

use std::path::PathBuf;

/// Why a dataset could not be loaded (or a trigger could not be stamped).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the file ({source}); check that it exists and is readable", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file the loader needs does not exist.
    #[error("{}: file not found; {hint}", path.display())]
    NotFound {
        /// The file (or, for a list of candidates, the first of them) that is missing.
        path: PathBuf,
        /// What to do about it.
        hint: String,
    },

    /// The file exists but its content is not what the format requires.
    #[error("{}: {message}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The SHA-256 of a file's unpacked bytes is not the canonical one.
    #[error(
        "{}: SHA-256 mismatch (expected {expected}, found {found}): the file is corrupt; \
         restore it from the repository with `git checkout -- data/`",
        path.display()
    )]
    Checksum {
        /// The corrupt file.
        path: PathBuf,
        /// The canonical SHA-256 (hex) of the unpacked bytes.
        expected: String,
        /// The SHA-256 (hex) actually found.
        found: String,
    },

    /// A dataset name that is not one of [`crate::DATASET_NAMES`].
    #[error("unknown dataset `{name}`: valid names are {}", crate::DATASET_NAMES.join(", "))]
    UnknownDataset {
        /// The name that was asked for.
        name: String,
    },

    /// A text dataset name that is not one of [`crate::TEXT_DATASET_NAMES`].
    #[error(
        "unknown text dataset `{name}`: valid names are {}",
        crate::TEXT_DATASET_NAMES.join(", ")
    )]
    UnknownTextDataset {
        /// The name that was asked for.
        name: String,
    },

    /// A serialised character tokenizer that cannot be read back.
    #[error("invalid character tokenizer: {message}")]
    Tokenizer {
        /// What is wrong with it.
        message: String,
    },

    /// SVHN was asked for without a directory holding its files.
    #[error(
        "dataset `svhn` is not bundled (non-commercial licence, ~180 MB): download \
         train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ \
         into a directory and pass --svhn-dir DIR"
    )]
    SvhnDirRequired,

    /// The backdoor trigger does not fit in the image.
    #[error(
        "trigger does not fit: the {box_height}x{box_width} diamond {margin} px from the top-right \
         corner needs an image of at least {min_height}x{min_width}, got {height}x{width} \
         (buffer of {len} values); use a dataset with larger images (mnist or svhn)"
    )]
    TriggerDoesNotFit {
        /// Image height asked for.
        height: usize,
        /// Image width asked for.
        width: usize,
        /// Length of the pixel buffer given.
        len: usize,
        /// Height of the trigger box.
        box_height: usize,
        /// Width of the trigger box.
        box_width: usize,
        /// Distance of the box from the top and right edges.
        margin: usize,
        /// Smallest image height that holds the box.
        min_height: usize,
        /// Smallest image width that holds the box.
        min_width: usize,
    },
}

impl DataError {
    /// A [`DataError::Format`] for `path` with the given message.
    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`DataError::Io`] for `path`, or [`DataError::NotFound`] with `hint`
    /// when the error says the file does not exist.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error, hint: &str) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path,
                hint: hint.to_string(),
            }
        } else {
            DataError::Io { path, source }
        }
    }
}
