//! Helpers the io tests share: safetensors files written by hand, to test
//! what the loaders refuse, and `torch.save` files ([`torch_files`]).

#![allow(dead_code)] // each test file uses its own subset

pub mod torch_files;

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use tensim_io::checkpoint::FORMAT;

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
