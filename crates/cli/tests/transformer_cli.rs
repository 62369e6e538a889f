//! `tensim compare` and `tensim matrix` on transformer checkpoints: the
//! numbers equal the core's, matrices are symmetric with unit diagonal, and
//! mixing kinds or architectures is refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_mentions, json_of, tensim};
use tensim_core::sequence::sequence_similarity;
use tensim_core::transformer::{AttentionBias, BlockShape, Transformer, TransformerShape};
use tensim_core::Residual;
use tensim_io::{save_checkpoint, CheckpointMeta, StoredDtype};

fn shape(context: usize) -> TransformerShape {
    let block = BlockShape::attention_only(AttentionBias::all(false), Residual::Lerp(0.5));
    TransformerShape::causal(6, 4, (2, 2), context, vec![block])
}

fn save(dir: &Path, name: &str, model: &Transformer, step: u64) -> String {
    let path = dir.join(name);
    let meta = CheckpointMeta {
        step: Some(step),
        ..CheckpointMeta::default()
    };
    save_checkpoint(&path, &model.clone().into(), &meta, StoredDtype::F64).unwrap();
    path.display().to_string()
}

/// `a.safetensors` (step 1) and `b.safetensors` (step 2): random models of
/// the contexts `[ca, cb]`.
fn save_two(dir: &Path, [ca, cb]: [usize; 2]) -> (String, String) {
    let a = save(dir, "a.safetensors", &shape(ca).random_model(1).unwrap(), 1);
    let b = save(dir, "b.safetensors", &shape(cb).random_model(2).unwrap(), 2);
    (a, b)
}

#[test]
fn compare_and_matrix_of_transformer_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let models: Vec<Transformer> = (0..3).map(|s| shape(4).random_model(s).unwrap()).collect();
    let paths: Vec<String> = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            save(
                dir.path(),
                &format!("ckpt-{i}.safetensors"),
                m,
                100 * i as u64,
            )
        })
        .collect();

    let doc = json_of(&tensim(&[
        "compare",
        &paths[0],
        &paths[1],
        "--json",
        "--samples",
        "2000",
    ]));
    assert_eq!(doc["kind"], "transformer");
    assert_eq!(doc["positions"], 4);
    assert_eq!(doc["gaussian_exact"], true);
    let expected = sequence_similarity(&models[0], &models[1], 4)
        .unwrap()
        .0
        .total;
    let got = doc["values"]["gaussian"].as_f64().unwrap();
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    assert!(doc["values"]["monte_carlo"]["std_error"].as_f64().unwrap() > 0.0);

    let out_csv = dir.path().join("m.csv");
    let (heatmap, replotted) = (dir.path().join("m.png"), dir.path().join("again.png"));
    let doc = json_of(&tensim(&[
        "matrix",
        dir.path().to_str().unwrap(),
        "--positions",
        "3",
        "-o",
        out_csv.to_str().unwrap(),
        "--plot",
        heatmap.to_str().unwrap(),
        "--json",
    ]));
    assert!(out_csv.exists());
    let plot = tensim(&[
        "plot",
        out_csv.to_str().unwrap(),
        "-o",
        replotted.to_str().unwrap(),
    ]);
    assert!(plot.status.success(), "{}", common::stderr(&plot));
    for png in [&heatmap, &replotted] {
        let bytes = std::fs::read(png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 2000,
            "{}",
            png.display()
        );
    }
    assert_eq!(doc["labels"][2], "step 200");
    let m: Vec<Vec<f64>> = serde_json::from_value(doc["matrix"].clone()).unwrap();
    for i in 0..3 {
        assert!((m[i][i] - 1.0).abs() < 1e-12);
        for j in 0..3 {
            assert_eq!(m[i][j].to_bits(), m[j][i].to_bits());
        }
    }
    let expected = sequence_similarity(&models[0], &models[2], 3)
        .unwrap()
        .0
        .total;
    assert!((m[0][2] - expected).abs() < 1e-12);

    for metric in ["slice:2", "matrix-cosine"] {
        let doc = json_of(&tensim(&[
            "matrix", &paths[0], &paths[1], "--metric", metric, "--json",
        ]));
        let m: Vec<Vec<f64>> = serde_json::from_value(doc["matrix"].clone()).unwrap();
        assert!((m[1][1] - 1.0).abs() < 1e-12, "{metric}");
    }
    let out = tensim(&["matrix", &paths[0], &paths[1], "--metric", "cka"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not available for transformer"));
}

#[test]
fn mixed_kinds_and_architectures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = save_two(dir.path(), [4, 5]);
    let out = tensim(&["compare", &a, &b]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different transformer architectures"), "{err}");

    let mlp = tensim_core::Architecture {
        layers: vec![tensim_core::LayerShape::Linear {
            input: 6,
            output: 6,
            bias: false,
        }],
    }
    .random_model(3)
    .unwrap();
    let c = dir.path().join("c.safetensors");
    save_checkpoint(
        &c,
        &mlp.into(),
        &CheckpointMeta::default(),
        StoredDtype::F64,
    )
    .unwrap();
    let out = tensim(&["matrix", &a, c.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_mentions(&err, &["sequential", "c.safetensors"]);
}

#[test]
fn a_job_larger_than_the_memory_available_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = save_two(dir.path(), [4, 4]);
    let out = Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args(["compare", &a, &b, "--positions", "4"])
        .env("TENSIM_MEMORY_LIMIT_MIB", "0.01")
        .output()
        .expect("run tensim");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no partial output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a.safetensors"), "{stderr}");
    assert!(stderr.contains("needs an estimated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // With room to spare the same job runs.
    let ok = Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args(["compare", &a, &b, "--positions", "4", "--json"])
        .env("TENSIM_MEMORY_LIMIT_MIB", "100000")
        .output()
        .expect("run tensim");
    json_of(&ok);
}
