//! Checkpoints and matrix files: exact round trips and clear errors on bad input.

mod common;

use common::{
    assert_mentions, assert_no_temporary_files, assert_refused_when_cut_to,
    assert_rounded_once_to_f32, file_len, load_error, save_and_load, write_f64_file,
};
use faer::Mat;
use safetensors::tensor::{Dtype, TensorView};
use tensim_core::network::{Network, NetworkShape};
use tensim_core::transformer::TransformerShape;
use tensim_core::Residual;
use tensim_core::{Architecture, LayerShape, Model};
use tensim_io::shape_json::{architecture_from_json, architecture_to_json};
use tensim_io::{
    load_checkpoint, read_matrix, save_checkpoint, write_matrix, write_table, CheckpointMeta,
    StoredDtype,
};

fn deep_model() -> Model {
    Architecture {
        layers: vec![
            LayerShape::Linear {
                input: 6,
                output: 4,
                bias: true,
            },
            LayerShape::Bilinear {
                input: 4,
                hidden: 5,
                output: 4,
                left_bias: true,
                right_bias: false,
                down_bias: true,
                residual: Residual::Lerp(0.35),
            },
            LayerShape::Linear {
                input: 4,
                output: 3,
                bias: false,
            },
        ],
    }
    .random_model(5)
    .unwrap()
}

fn meta() -> CheckpointMeta {
    CheckpointMeta {
        step: Some(250),
        phase: Some("B".into()),
        label: Some("poisoned, step 250".into()),
    }
}

/// The architecture JSON of one linear layer.
fn linear_layer_json(input: usize, output: usize, bias: bool) -> String {
    architecture_to_json(&Architecture {
        layers: vec![LayerShape::Linear {
            input,
            output,
            bias,
        }],
    })
}

/// Writes `name` in a fresh directory, a safetensors file with the tensim
/// metadata but hand-made tensors, and returns the message with which
/// loading it fails.
fn load_error_of_raw(
    name: &str,
    arch_json: &str,
    tensors: &[(&str, Vec<usize>, Vec<f64>)],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write_f64_file(
        &path,
        &[("architecture", arch_json), ("dtype", "f64")],
        tensors,
    );
    load_error(&path)
}

#[test]
fn checkpoint_round_trip_is_bit_exact_in_f64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.safetensors");
    let m = deep_model();
    let loaded = save_and_load(&path, m.clone().into(), &meta(), StoredDtype::F64);
    assert_eq!(loaded.network.as_sequential().unwrap(), &m);
    assert_eq!(loaded.meta, meta());
    assert_eq!(loaded.dtype, StoredDtype::F64);
    // f32 storage rounds each weight once.
    let loaded = save_and_load(
        &path,
        m.clone().into(),
        &CheckpointMeta::default(),
        StoredDtype::F32,
    );
    assert_rounded_once_to_f32(&loaded.network, &m.parameters());
    assert_no_temporary_files(dir.path());
}

#[test]
fn sequential_architecture_json_is_pinned_and_round_trips() {
    // Checkpoints store this text: it must not change.
    let mut arch = deep_model().architecture().clone();
    arch.layers.insert(
        2,
        LayerShape::Bilinear {
            input: 4,
            hidden: 3,
            output: 4,
            left_bias: false,
            right_bias: true,
            down_bias: false,
            residual: Residual::Add(0.5),
        },
    );
    arch.layers.push(LayerShape::bilinear(3, 2, 2));
    let json = architecture_to_json(&arch);
    assert_eq!(
        json,
        concat!(
            r#"{"layers":[{"kind":"linear","input":6,"output":4,"bias":true},"#,
            r#"{"kind":"bilinear","input":4,"hidden":5,"output":4,"left_bias":true,"#,
            r#""right_bias":false,"down_bias":true,"residual_scale":0.35},"#,
            r#"{"kind":"bilinear","input":4,"hidden":3,"output":4,"left_bias":false,"#,
            r#""right_bias":true,"down_bias":false,"residual_scale":0.5,"residual_kind":"add"},"#,
            r#"{"kind":"linear","input":4,"output":3,"bias":false},"#,
            r#"{"kind":"bilinear","input":3,"hidden":2,"output":2,"left_bias":false,"#,
            r#""right_bias":false,"down_bias":false,"residual_scale":1.0}]}"#,
        )
    );
    assert_eq!(architecture_from_json(&json).unwrap(), arch);
}

#[test]
fn wrong_shape_names_file_tensor_expected_and_found() {
    let err = load_error_of_raw(
        "bad.safetensors",
        &linear_layer_json(3, 2, false),
        &[("layers.0.weight", vec![3, 2], vec![0.0; 6])],
    );
    assert_mentions(
        &err,
        &["bad.safetensors", "layers.0.weight", "[2, 3]", "[3, 2]"],
    );
}

#[test]
fn missing_extra_and_non_finite_tensors_are_reported() {
    let json = linear_layer_json(2, 2, true);
    let weight_only = [("layers.0.weight", vec![2, 2], vec![1.0; 4])];
    let err = load_error_of_raw("c.safetensors", &json, &weight_only);
    assert!(err.contains("`layers.0.bias` is missing"), "{err}");

    let err = load_error_of_raw(
        "c.safetensors",
        &json,
        &[
            ("layers.0.weight", vec![2, 2], vec![1.0; 4]),
            ("layers.0.bias", vec![2], vec![0.0; 2]),
            ("layers.9.weight", vec![1], vec![0.0]),
        ],
    );
    assert_mentions(&err, &["layers.9.weight", "not part of"]);

    let err = load_error_of_raw(
        "c.safetensors",
        &json,
        &[
            ("layers.0.weight", vec![2, 2], vec![1.0, f64::NAN, 0.0, 1.0]),
            ("layers.0.bias", vec![2], vec![0.0; 2]),
        ],
    );
    assert_mentions(&err, &["c.safetensors", "layers.0.weight", "NaN"]);
}

#[test]
fn truncated_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    save_checkpoint(&path, &deep_model().into(), &meta(), StoredDtype::F64).unwrap();
    assert_refused_when_cut_to(&path, &[file_len(&path) - 17]);

    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "hello").unwrap();
    let err = load_error(&other);
    assert_mentions(&err, &["notes.txt", "not a valid safetensors"]);

    // A real safetensors file without tensim metadata.
    let plain = dir.path().join("plain.safetensors");
    let data = [0u8; 8];
    let view = TensorView::new(Dtype::F64, vec![1], &data).unwrap();
    std::fs::write(&plain, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
    let err = load_error(&plain);
    assert!(err.contains("not a tensim checkpoint"), "{err}");
}

#[test]
fn matrices_reload_exactly_from_csv_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mat::from_fn(3, 3, |i, j| {
        1.0 / (1.0 + i as f64 + j as f64) + 1e-17 * (i * j) as f64
    });
    let labels: Vec<String> = vec!["step 0".into(), "a,b".into(), "say \"hi\"".into()];
    for name in ["m.csv", "m.npy"] {
        let path = dir.path().join(name);
        write_matrix(&path, &labels, &m).unwrap();
        let (read_labels, back) = read_matrix(&path).unwrap();
        if name.ends_with("csv") {
            assert_eq!(read_labels, labels);
        }
        assert_eq!(back, m, "{name}");
    }
    let err = write_matrix(&dir.path().join("m.xlsx"), &labels, &m)
        .unwrap_err()
        .to_string();
    assert!(err.contains("use .csv or .npy"), "{err}");
    let missing_dir = dir.path().join("nope").join("m.csv");
    assert!(write_matrix(&missing_dir, &labels, &m).is_err());
    assert!(!missing_dir.exists());
}

#[test]
fn tables_have_one_field_per_column_on_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mat::from_fn(3, 5, |i, j| (i * 5 + j) as f64 / 7.0);
    let rows: Vec<String> = (0..3).map(|i| format!("step {i}")).collect();
    let columns: Vec<String> = (0..5).map(|k| format!("frequency {k}")).collect();
    let csv = dir.path().join("t.csv");
    write_table(&csv, ("checkpoint", &rows), &columns, &m).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l.split(',').count() == 6), "{text}");
    assert_eq!(
        lines[1].split(',').nth(2).unwrap(),
        format!("{:?}", 1.0 / 7.0)
    );
    let npy = dir.path().join("t.npy");
    write_table(&npy, ("checkpoint", &rows), &columns, &m).unwrap();
    assert_eq!(read_matrix(&npy).unwrap().1, m);
    let err = write_table(&csv, ("checkpoint", &rows), &rows, &m)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 row and 3 column labels for a 3×5 matrix"),
        "{err}"
    );
}

/// The same network and metadata give the same file bytes every time
/// (safetensors writes its metadata map in a random hash order; tensim
/// sorts the header), so checkpoints of resumed and repeated runs compare
/// byte for byte.
#[test]
fn saving_is_deterministic_to_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let network: Network = NetworkShape::Transformer(TransformerShape::benchmark(1))
        .random(3)
        .unwrap();
    let meta = CheckpointMeta {
        step: Some(7),
        phase: Some("B".into()),
        label: Some("step 7".into()),
    };
    let bytes: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let path = dir.path().join(format!("{i}.safetensors"));
            save_checkpoint(&path, &network, &meta, StoredDtype::F32).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] == w[1]));
    load_checkpoint(&dir.path().join("0.safetensors")).unwrap();
}
