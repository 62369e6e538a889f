//! Helpers the io tests share: safetensors files written by hand, to test
//! what the loaders refuse, `torch.save` files ([`torch_files`]), and the
//! checks of a checkpoint round trip.

#![allow(dead_code)] // each test file uses its own subset

pub mod torch_files;

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use tensim_core::network::Network;
use tensim_io::checkpoint::FORMAT;
use tensim_io::{load_checkpoint, save_checkpoint, Checkpoint, CheckpointMeta, StoredDtype};

/// Writes f64 `tensors` (name, shape, values, in this order) with the
/// tensim `format` key and the given further `metadata`.
pub fn write_f64_file<N: AsRef<str>>(
    path: &Path,
    metadata: &[(&str, &str)],
    tensors: &[(N, Vec<usize>, Vec<f64>)],
) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.2.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            let view = TensorView::new(Dtype::F64, t.1.clone(), b).unwrap();
            (t.0.as_ref().to_string(), view)
        })
        .collect();
    let mut info = HashMap::new();
    info.insert("format".to_string(), FORMAT.to_string());
    for (key, value) in metadata {
        info.insert(key.to_string(), value.to_string());
    }
    std::fs::write(path, safetensors::serialize(views, Some(info)).unwrap()).unwrap();
}

/// Saves `network` at `path` with `meta`, stored in `dtype`, and loads it back.
pub fn save_and_load(
    path: &Path,
    network: Network,
    meta: &CheckpointMeta,
    dtype: StoredDtype,
) -> Checkpoint {
    save_checkpoint(path, &network, meta, dtype).unwrap();
    load_checkpoint(path).unwrap()
}

/// Asserts that every parameter of `loaded` is the one of `original`
/// rounded once to f32.
pub fn assert_rounded_once_to_f32(loaded: &Network, original: &[Vec<f64>]) {
    for (x, y) in loaded
        .parameters()
        .iter()
        .flatten()
        .zip(original.iter().flatten())
    {
        assert_eq!(*x, f64::from(*y as f32));
    }
}

/// Asserts that `dir` holds one file only: saving left no temporary file behind.
pub fn assert_no_temporary_files(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files are left behind");
}

/// The message with which loading the checkpoint at `path` fails.
pub fn load_error(path: &Path) -> String {
    load_checkpoint(path).unwrap_err().to_string()
}

/// Asserts that `message` contains each of `needles`.
pub fn assert_mentions(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
}

/// Asserts that the checkpoint at `path`, cut short to each of `lengths`
/// bytes, is refused as not valid safetensors by an error naming the file.
pub fn assert_refused_when_cut_to(path: &Path, lengths: &[usize]) {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    for &cut in lengths {
        std::fs::write(path, &bytes[..cut]).unwrap();
        let err = load_error(path);
        assert!(
            err.contains(name) && err.contains("not a valid safetensors"),
            "cut at {cut}: {err}"
        );
    }
}

/// The length in bytes of the file at `path`.
pub fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).unwrap().len() as usize
}
