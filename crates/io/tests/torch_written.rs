//! Files written by real PyTorch (`fixtures/make_torch_fixtures.py`): strided
//! views, every dtype, the legacy stream, deflated entries and a compressed
//! `.npz`, each compared bit for bit with the values torch reported.

use std::path::PathBuf;

use tensim_io::read_tensor_sets;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Asserts that `file` holds exactly the tensors of `want` (name → shape,
/// values), with the given on-disk dtypes.
fn assert_matches(
    file: &str,
    want: &serde_json::Map<String, serde_json::Value>,
    dtypes: &[(&str, &str)],
) {
    let sets = read_tensor_sets(&fixture(file), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sets.len(), 1);
    let got = &sets[0].tensors;
    let names: Vec<&str> = got.iter().map(|t| t.name.as_str()).collect();
    let mut want_names: Vec<&str> = want.keys().map(String::as_str).collect();
    want_names.sort();
    assert_eq!(names, want_names, "{file}");
    for t in got {
        let w = &want[&t.name];
        let shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap();
        let values: Vec<f64> = serde_json::from_value(w["values"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{file}: {}", t.name);
        assert_eq!(t.values, values, "{file}: {}", t.name);
    }
    for (name, dtype) in dtypes {
        assert_eq!(sets[0].get(name).unwrap().dtype, *dtype, "{file}: {name}");
    }
}

const DTYPES: [(&str, &str); 9] = [
    ("transposed", "f64"),
    ("big", "f32"),
    ("half", "f16"),
    ("bf16", "bf16"),
    ("count", "i64"),
    ("mask", "bool"),
    ("bytes", "u8"),
    ("small", "i8"),
    ("ints", "i32"),
];

#[test]
fn strided_views_and_every_dtype_load_as_torch_reports_them() {
    let mut want = expected().as_object().unwrap().clone();
    want.remove("npz");
    // Transposed (stride (1, 4)), expanded (stride (0, 1)) and a slice at an
    // offset into `big`'s storage are all gathered with their strides.
    assert_matches("strided.pt", &want, &DTYPES);
    let sets = read_tensor_sets(&fixture("strided.pt"), None).unwrap();
    assert_eq!(sets[0].dtypes(), ["bf16", "f16", "f32", "f64"]);
}

#[test]
fn the_legacy_stream_and_a_deflated_archive_load_the_same_tensors() {
    let mut want = expected().as_object().unwrap().clone();
    want.remove("npz");
    assert_matches("legacy.pt", &want, &DTYPES);
    assert_matches("deflated.pt", &want, &DTYPES);
}

#[test]
fn a_compressed_npz_with_fortran_order_and_big_endian_arrays_loads() {
    let want = expected()["npz"].as_object().unwrap().clone();
    assert_matches(
        "compressed.npz",
        &want,
        &[("a", "f32"), ("b", "f64"), ("c", "i64")],
    );
}
