//! The legacy `torch.save` stream (PyTorch before 1.6, or
//! `_use_new_zipfile_serialization=False`): five pickles in a row (the magic
//! number, the protocol version 1001, a dict of system facts, the object,
//! the sorted list of storage keys), then for each key in that order the
//! storage's element count as a little-endian u64 and its raw bytes.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use super::{describe, materialise, stream_allowed, Described};
use crate::checkpoint::CheckpointError;
use crate::foreign::TensorSet;
use crate::pickle::{self, Graph, Limits, Value};

/// `torch.serialization`'s magic number, as the LONG1 bytes it pickles to.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether `head` (a file's first bytes) starts a legacy stream: protocol 2
/// and the magic number as a 10-byte LONG1.
pub fn is_legacy(head: &[u8]) -> bool {
    head.len() >= 14 && head[..4] == [0x80, 0x02, 0x8a, 0x0a] && head[4..14] == MAGIC
}

fn fail(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::new(path, format!("legacy PyTorch file: {}", reason.into()))
}

/// Reads every checkpoint of the legacy PyTorch file at `path`.
pub fn read_legacy(
    path: &Path,
    key: Option<&str>,
    limits: &Limits,
) -> Result<Vec<TensorSet>, CheckpointError> {
    let size = std::fs::metadata(path)
        .map_err(|e| fail(path, format!("cannot read: {e}")))?
        .len();
    if size
        > limits
            .max_tensor_bytes
            .saturating_add(limits.max_pickle_bytes)
    {
        return Err(fail(
            path,
            format!("{size} bytes, more than tensim reads from one file"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let nothing = |_: &str, _: &str| false;
    let mut pos = 0;
    let mut next = |allowed: pickle::Allowlist<'_>| -> Result<Graph, CheckpointError> {
        let (g, end) =
            pickle::parse(&bytes, pos, limits, allowed).map_err(|e| fail(path, e.to_string()))?;
        pos = end;
        Ok(g)
    };
    let magic = next(&nothing)?;
    if magic.get(magic.root()) != &Value::BigInt(MAGIC.to_vec()) {
        return Err(fail(path, "wrong magic number"));
    }
    let protocol = next(&nothing)?;
    if protocol.int(protocol.root()) != Some(1001) {
        return Err(fail(path, "unknown protocol version (expected 1001)"));
    }
    check_system(&next(&nothing)?).map_err(|e| fail(path, e))?;
    let object = next(&stream_allowed)?;
    let keys = next(&nothing)?;
    let described = describe(&object, key, limits).map_err(|e| fail(path, e))?;
    let ranges = storage_ranges(&bytes, pos, &keys, &described).map_err(|e| fail(path, e))?;
    materialise(described, crate::foreign::PYTORCH, limits, |storage| {
        let range = ranges[&storage.key].clone();
        Ok(bytes[range].to_vec())
    })
    .map_err(|e| fail(path, e))
}

/// The dict of system facts: little-endian data is all tensim reads.
fn check_system(g: &Graph) -> Result<(), String> {
    let Value::Dict(kv) = g.get(g.root()) else {
        return Err("the system information is not a dict".into());
    };
    let little = kv
        .iter()
        .find(|(k, _)| g.text(*k) == Some("little_endian"))
        .map(|&(_, v)| g.get(v));
    match little {
        Some(Value::Bool(true)) | None => Ok(()),
        _ => Err(
            "written on a big-endian machine; load and save it there with a current PyTorch".into(),
        ),
    }
}

/// Where each storage's bytes lie: the storages follow the key list in its
/// order, each as a u64 element count and the elements. Every storage a
/// tensor uses must be there with the element count its id declares.
fn storage_ranges(
    bytes: &[u8],
    mut pos: usize,
    keys: &Graph,
    described: &Described,
) -> Result<HashMap<String, Range<usize>>, String> {
    let mut declared = HashMap::new();
    for (_, refs) in &described.groups {
        for (_, t) in refs {
            declared.insert(t.storage.key.clone(), (t.storage.dtype, t.storage.numel));
        }
    }
    let list = keys
        .items(keys.root())
        .ok_or("the storage key list is not a list")?;
    let mut ranges = HashMap::new();
    for &k in list {
        let key = keys
            .key_text(k)
            .ok_or("a storage key that is not a string")?;
        let (dtype, numel) = *declared.get(&key).ok_or_else(|| {
            format!("storage {key} is not used by any tensor, so its size is unknown")
        })?;
        let count_bytes: [u8; 8] = bytes
            .get(pos..pos + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("storage {key}: truncated before its element count"))?;
        let count = u64::from_le_bytes(count_bytes);
        if count != numel {
            return Err(format!(
                "storage {key} holds {count} elements, its tensors declare {numel}"
            ));
        }
        let start = pos + 8;
        let end = count
            .checked_mul(dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("storage {key}: truncated ({count} elements declared)"))?;
        ranges.insert(key, start..end);
        pos = end;
    }
    if let Some(missing) = declared.keys().find(|k| !ranges.contains_key(*k)) {
        return Err(format!(
            "storage {missing} is used by a tensor but not in the file"
        ));
    }
    Ok(ranges)
}
