//! The IDX format of MNIST (optionally gzipped).
//!
//! An IDX file is big-endian: a magic number `0x00000803` (images) or
//! `0x00000801` (labels), then one u32 per dimension (count; then rows and
//! columns for images), then the u8 data, row-major. A file whose first two
//! bytes are the gzip magic `1f 8b` is un-gzipped first, whatever its name.

use std::path::Path;

use crate::read::read_maybe_gzip;
use crate::DataError;

/// Magic number of an IDX file of u8 images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

const NOT_FOUND_HINT: &str = "give the path of an IDX file (raw or gzipped)";

/// Reads an IDX image file: `(pixels, n, rows, cols)`, the pixels being the
/// `n * rows * cols` bytes of the images one after another, each row-major.
pub fn read_idx_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let bytes = read_maybe_gzip(path, NOT_FOUND_HINT)?;
    parse_idx_images(bytes, path)
}

/// Reads an IDX label file: one u8 per sample.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gzip(path, NOT_FOUND_HINT)?;
    parse_idx_labels(bytes, path)
}

/// Parses the (unpacked) bytes of an IDX image file; `path` is for messages.
pub fn parse_idx_images(
    mut bytes: Vec<u8>,
    path: &Path,
) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let dims = parse_header(&bytes, IDX_IMAGES_MAGIC, 3, "images", path)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    let header = 4 + 4 * 3;
    bytes.drain(..header);
    Ok((bytes, n, rows, cols))
}

/// Parses the (unpacked) bytes of an IDX label file; `path` is for messages.
pub fn parse_idx_labels(mut bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    parse_header(&bytes, IDX_LABELS_MAGIC, 1, "labels", path)?;
    bytes.drain(..8);
    Ok(bytes)
}

/// Checks the magic number and that the data length matches the header;
/// returns the dimensions.
fn parse_header(
    bytes: &[u8],
    magic: u32,
    ndims: usize,
    what: &str,
    path: &Path,
) -> Result<Vec<usize>, DataError> {
    let header = 4 + 4 * ndims;
    let be_u32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let found = (bytes.len() >= 4).then(|| be_u32(0));
    if let Some(found) = found.filter(|&f| f != magic) {
        return Err(DataError::format(
            path,
            format!(
                "not an IDX {what} file: magic number 0x{found:08x}, expected 0x{magic:08x}; \
                 check that the right file is given"
            ),
        ));
    }
    if bytes.len() < header {
        return Err(DataError::format(
            path,
            format!(
                "truncated IDX {what} file: {} bytes, shorter than its {header}-byte header; \
                 restore or re-download the file",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndims).map(|k| be_u32(4 + 4 * k) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|data| data.checked_add(header));
    let dims_text = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x");
    match expected {
        Some(len) if len == bytes.len() => Ok(dims),
        Some(len) => Err(DataError::format(
            path,
            format!(
                "IDX {what} file of {} bytes, but its header ({dims_text}) says {len} bytes: \
                 the file is truncated or corrupt; restore or re-download it",
                bytes.len()
            ),
        )),
        None => Err(DataError::format(
            path,
            format!("IDX {what} header dimensions {dims_text} overflow; the file is corrupt"),
        )),
    }
}
