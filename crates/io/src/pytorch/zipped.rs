//! `torch.save`'s zip layout: `<dir>/data.pkl` (the pickle) and
//! `<dir>/data/<key>` (each storage's raw little-endian bytes), stored or
//! deflate-compressed (a re-zipped checkpoint); inflation is bounded by the
//! bytes the pickle declares.

use std::io::{BufReader, Read, Seek};
use std::path::Path;

use super::{describe, materialise, stream_allowed};
use crate::checkpoint::CheckpointError;
use crate::foreign::TensorSet;
use crate::pickle::{self, Limits};
use crate::raw::read_exactly;

fn fail(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::new(path, reason)
}

/// Reads every checkpoint of the zip-format PyTorch file at `path`.
pub fn read_zipped(
    path: &Path,
    key: Option<&str>,
    limits: &Limits,
) -> Result<Vec<TensorSet>, CheckpointError> {
    let file = std::fs::File::open(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| fail(path, format!("not a valid zip archive ({e})")))?;
    let pkl = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| fail(path, "no data.pkl in the archive"))?;
    let dir = pkl.strip_suffix("data.pkl").unwrap_or_default().to_string();
    let bytes = read_pickle(&mut zip, &pkl, limits.max_pickle_bytes).map_err(|e| fail(path, e))?;
    let (graph, _) =
        pickle::parse(&bytes, 0, limits, &stream_allowed).map_err(|e| fail(path, e.to_string()))?;
    drop(bytes);
    let described = describe(&graph, key, limits).map_err(|e| fail(path, e))?;
    materialise(described, crate::foreign::PYTORCH, limits, |storage| {
        let name = format!("{dir}data/{}", storage.key);
        let mut entry = zip
            .by_name(&name)
            .map_err(|e| format!("storage {name} is missing ({e})"))?;
        let want = storage.numel * storage.dtype.size() as u64;
        read_exactly(&mut entry, want).map_err(|e| format!("storage {name}: {e}"))
    })
    .map_err(|e| fail(path, e))
}

/// The pickle entry's bytes, refused past `max` bytes.
fn read_pickle<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, String> {
    let entry = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "{name} is larger than tensim's limit of {max} bytes for a pickle"
        ));
    }
    Ok(bytes)
}
