//! Reading whole files, transparently un-gzipping them.

use std::io::Read;
use std::path::Path;

use crate::DataError;

/// The two magic bytes that open every gzip stream.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start with the gzip magic.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// The bytes of the file at `path`, un-gzipped when they start with the gzip
/// magic (whatever the file's extension). `hint` says what to do if the file
/// does not exist.
pub(crate) fn read_maybe_gzip(path: &Path, hint: &str) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e, hint))?;
    if !is_gzip(&raw) {
        return Ok(raw);
    }
    gunzip(path, &raw, "restore or re-download it")
}

/// Un-gzips `raw`, the bytes of the file at `path`. A broken stream is a
/// format error naming `path` that ends with `remedy` (what to do about it).
pub(crate) fn gunzip(path: &Path, raw: &[u8], remedy: &str) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| {
            DataError::format(
                path,
                format!("broken gzip stream ({e}): the file is truncated or corrupt; {remedy}"),
            )
        })?;
    Ok(out)
}
