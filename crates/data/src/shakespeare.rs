//! The bundled text corpus: the complete works of Shakespeare, one gzipped
//! plain-ASCII file (provenance and licence in `data/README.md`).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::read::{gunzip, is_gzip};
use crate::{bundled_data_dir, DataError};

/// The corpus file, relative to [`bundled_data_dir`].
pub const SHAKESPEARE_FILE: &str = "shakespeare/shakespeare_complete.txt.gz";

/// Length in bytes (= characters, the text is ASCII) of the unpacked corpus.
pub const SHAKESPEARE_LEN: usize = 5_057_282;

/// SHA-256 (hex) of the unpacked corpus, checked by [`load_text_dataset`].
pub const SHAKESPEARE_SHA256: &str =
    "3237e33221e73615c677bd59fd69a76da38f9a2eb51d6efb7191f32f8cb9fa4c";

/// The names [`load_text_dataset`] accepts.
pub const TEXT_DATASET_NAMES: [&str; 1] = ["shakespeare"];

/// What to do when the bundled corpus is missing.
const RESTORE_HINT: &str = "the Shakespeare corpus is bundled as \
     data/shakespeare/shakespeare_complete.txt.gz; restore it with \
     `git checkout -- data/shakespeare` or point TENSIM_DATA_DIR at a directory \
     holding shakespeare/shakespeare_complete.txt.gz";

/// Reads the gzipped plain-ASCII text file at `path` (the bundled corpus, or
/// any file in the same form) and returns its unpacked text, unchanged.
///
/// Errors, each naming `path`: [`DataError::NotFound`] when the file does
/// not exist (with how to restore it), [`DataError::Io`] when it cannot be
/// read, and [`DataError::Format`] when it is not gzip, when its gzip stream
/// is broken, when the unpacked bytes are not UTF-8, or when they are UTF-8
/// but not plain ASCII (the message gives the byte offset and the
/// character). The SHA-256 is not checked here; [`load_text_dataset`] does.
pub fn load_shakespeare(path: &Path) -> Result<String, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e, RESTORE_HINT))?;
    if !is_gzip(&raw) {
        return Err(DataError::format(
            path,
            "not a gzip file (it does not start with the gzip magic 1f 8b): the text \
             corpus must be gzipped plain ASCII; compress it with `gzip` or restore \
             the bundled copy with `git checkout -- data/shakespeare`",
        ));
    }
    let bytes = gunzip(
        path,
        &raw,
        "restore it with `git checkout -- data/shakespeare`",
    )?;
    let text = String::from_utf8(bytes).map_err(|e| {
        DataError::format(
            path,
            format!(
                "the unpacked text is not UTF-8 (invalid byte at offset {}); the corpus \
                 must be plain ASCII text",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    if let Some((offset, c)) = text.char_indices().find(|(_, c)| !c.is_ascii()) {
        return Err(DataError::format(
            path,
            format!(
                "the unpacked text is UTF-8 but not plain ASCII: character {c:?} \
                 (U+{:04X}) at byte offset {offset}; the corpus must be plain ASCII",
                u32::from(c)
            ),
        ));
    }
    Ok(text)
}

/// Loads a bundled text dataset by name; `"shakespeare"` is the only one:
/// [`load_shakespeare`] on `bundled_data_dir()/`[`SHAKESPEARE_FILE`], then
/// a check of the text's SHA-256 against [`SHAKESPEARE_SHA256`]
/// ([`DataError::Checksum`] when it differs).
///
/// Any other name is [`DataError::UnknownTextDataset`].
pub fn load_text_dataset(name: &str) -> Result<String, DataError> {
    match name {
        "shakespeare" => {
            let path = bundled_data_dir().join(SHAKESPEARE_FILE);
            let text = load_shakespeare(&path)?;
            let found: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if found != SHAKESPEARE_SHA256 {
                return Err(DataError::Checksum {
                    path,
                    expected: SHAKESPEARE_SHA256.to_string(),
                    found,
                });
            }
            Ok(text)
        }
        _ => Err(DataError::UnknownTextDataset {
            name: name.to_string(),
        }),
    }
}
