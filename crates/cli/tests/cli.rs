//! End-to-end tests of the `tensim` binary: real checkpoints on disk, real
//! output files, and the errors a user meets.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_mentions, json_of as stdout_json, stderr, tensim};

use serde_json::Value;
use tensim_core::symmetry::permute_hidden;
use tensim_core::{Architecture, LayerShape, Model};
use tensim_io::{read_matrix, save_checkpoint, CheckpointMeta, StoredDtype};

fn classifier(outputs: usize, seed: u64) -> Model {
    Architecture {
        layers: vec![LayerShape::bilinear(12, 6, outputs)],
    }
    .random_model(seed)
    .unwrap()
}

fn save(dir: &Path, name: &str, model: &Model, step: u64) -> PathBuf {
    let path = dir.join(name);
    let meta = CheckpointMeta {
        step: Some(step),
        phase: Some("A".into()),
        label: None,
    };
    save_checkpoint(&path, &model.clone().into(), &meta, StoredDtype::F64).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn demo_shows_invariance_that_matrix_cosine_misses() {
    let doc = stdout_json(&tensim(&["demo", "--json"]));
    let variants = doc["variants"].as_array().unwrap();
    assert!(variants.len() >= 5);
    for v in variants {
        if v["same_function"].as_bool().unwrap() {
            assert!((v["tensor"].as_f64().unwrap() - 1.0).abs() < 1e-10, "{v}");
            assert!((v["gaussian"].as_f64().unwrap() - 1.0).abs() < 1e-10, "{v}");
            assert!(v["matrix_cosine"].as_f64().unwrap() < 0.5, "{v}");
        }
    }
    let text = tensim(&["demo"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("hidden units permuted"));
}

#[test]
fn compare_reports_every_metric_with_exactness() {
    let dir = tempfile::tempdir().unwrap();
    let a = classifier(4, 1);
    let b = permute_hidden(&a, 0, &[5, 4, 3, 2, 1, 0]).unwrap();
    let (pa, pb) = (
        save(dir.path(), "a.safetensors", &a, 0),
        save(dir.path(), "b.safetensors", &b, 250),
    );
    let doc = stdout_json(&tensim(&[
        "compare",
        s(&pa),
        s(&pb),
        "--json",
        "--samples",
        "5000",
    ]));
    let metric = |key: &str| {
        doc["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == key)
            .cloned()
            .unwrap()
    };
    assert!((metric("tensor")["value"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert!((metric("gaussian")["value"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(metric("gaussian")["note"], "exact");
    assert!(metric("matrix_cosine")["value"].as_f64().unwrap() < 0.9);
    assert!((metric("monte_carlo")["value"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(doc["per_class"]["tensor"].as_array().unwrap().len(), 4);
    let text = tensim(&["compare", s(&pa), s(&pb)]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert_mentions(&out, &["tensor (weight space", "class"]);
}

#[test]
fn matrix_writes_symmetric_unit_diagonal_csv_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..5)
        .map(|i| {
            save(
                dir.path(),
                &format!("ckpt{i}.safetensors"),
                &classifier(3, 10 + i),
                250 * i,
            )
        })
        .collect();
    let mut args: Vec<&str> = vec!["matrix"];
    args.extend(paths.iter().map(|p| s(p)));
    for (metric, file) in [
        ("tensor", "t.csv"),
        ("slice:2", "s.npy"),
        ("gaussian", "g.npy"),
        ("matrix-cosine", "w.csv"),
    ] {
        let out_path = dir.path().join(file);
        let mut a = args.clone();
        a.extend(["--metric", metric, "-o", s(&out_path), "--json"]);
        let doc = stdout_json(&tensim(&a));
        let (labels, m) = read_matrix(&out_path).unwrap();
        if file.ends_with("csv") {
            assert_eq!(labels[1], "step 250");
        }
        let rows = doc["matrix"].as_array().unwrap();
        for i in 0..5 {
            assert!((m[(i, i)] - 1.0).abs() < 1e-12, "{metric} diagonal");
            for j in 0..5 {
                assert_eq!(m[(i, j)], m[(j, i)], "{metric} symmetric");
                assert_eq!(
                    m[(i, j)],
                    rows[i][j].as_f64().unwrap(),
                    "{metric}: file equals JSON"
                );
            }
        }
    }
    // f32 path agrees with f64 to f32 accuracy.
    let mut a = args.clone();
    a.extend(["--json", "--precision", "f32"]);
    let f32_doc = stdout_json(&tensim(&a));
    let mut b = args.clone();
    b.push("--json");
    let f64_doc = stdout_json(&tensim(&b));
    for i in 0..5 {
        for j in 0..5 {
            let (x, y) = (
                f32_doc["matrix"][i][j].as_f64().unwrap(),
                f64_doc["matrix"][i][j].as_f64().unwrap(),
            );
            assert!((x - y).abs() < 1e-5);
        }
    }
}

#[test]
fn bad_input_gives_one_line_errors_and_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = save(dir.path(), "a.safetensors", &classifier(4, 1), 0);
    let five = save(dir.path(), "five.safetensors", &classifier(5, 2), 0);
    let out_file = dir.path().join("out.csv");

    let r = tensim(&["compare", s(&a), s(&five)]);
    assert!(!r.status.success());
    let e = stderr(&r);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert_mentions(&e, &["a.safetensors", "five.safetensors", "4 outputs"]);

    let r = tensim(&["matrix", s(&a), s(&five), "-o", s(&out_file)]);
    assert!(!r.status.success());
    let e = stderr(&r);
    assert_mentions(&e, &["five.safetensors", "output dimension"]);
    assert!(!out_file.exists(), "no output on failure");

    let truncated = dir.path().join("trunc.safetensors");
    let bytes = std::fs::read(&a).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let r = tensim(&["matrix", s(&a), s(&truncated), "-o", s(&out_file)]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("trunc.safetensors"), "{}", stderr(&r));
    assert!(!out_file.exists());

    let r = tensim(&["matrix", s(&a), s(&a), "--metric", "bogus"]);
    assert!(
        stderr(&r).contains("unknown metric `bogus`"),
        "{}",
        stderr(&r)
    );
    let r = tensim(&["matrix", s(&a), s(&a), "--metric", "slice:7"]);
    assert!(
        stderr(&r).contains("class 7 does not exist"),
        "{}",
        stderr(&r)
    );
    let r = tensim(&["matrix", s(&a), s(&a), "--metric", "cka"]);
    assert!(stderr(&r).contains("needs --inputs"), "{}", stderr(&r));
}

#[test]
fn output_cosine_and_cka_on_given_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let a = save(dir.path(), "a.safetensors", &classifier(3, 1), 0);
    let b = save(dir.path(), "b.safetensors", &classifier(3, 2), 1);
    let x = faer::Mat::from_fn(40, 12, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5);
    let inputs = dir.path().join("x.npy");
    tensim_io::write_matrix(&inputs, &[], &x).unwrap();
    let doc = stdout_json(&tensim(&[
        "compare",
        s(&a),
        s(&b),
        "--inputs",
        s(&inputs),
        "--json",
        "--samples",
        "0",
    ]));
    let metrics = doc["metrics"].as_array().unwrap();
    let value = |k: &str| {
        metrics.iter().find(|m| m["metric"] == k).unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    let expected = tensim_core::output_cosine::output_cosine(
        tensim_io::load_checkpoint(&a)
            .unwrap()
            .network
            .as_sequential()
            .unwrap(),
        tensim_io::load_checkpoint(&b)
            .unwrap()
            .network
            .as_sequential()
            .unwrap(),
        x.as_ref(),
    )
    .unwrap();
    assert_eq!(value("output_cosine"), expected);
    assert!((0.0..=1.0).contains(&value("cka")));
    let doc = stdout_json(&tensim(&[
        "matrix",
        s(&a),
        s(&b),
        "--metric",
        "cka",
        "--inputs",
        s(&inputs),
        "--json",
    ]));
    assert!((doc["matrix"][0][0].as_f64().unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn diff_equals_the_four_product_formula() {
    use tensim_core::similarity::difference_similarity;
    use tensim_core::TensorPrepared;
    let dir = tempfile::tempdir().unwrap();
    let models: Vec<Model> = (0..4).map(|i| classifier(3, 40 + i)).collect();
    let paths: Vec<PathBuf> = models
        .iter()
        .enumerate()
        .map(|(i, m)| save(dir.path(), &format!("c{i}.safetensors"), m, 100 * i as u64))
        .collect();
    let prepared: Vec<TensorPrepared<f64>> = models
        .iter()
        .map(|m| TensorPrepared::new(m).unwrap())
        .collect();
    let direct = |a: usize, b: usize, c: usize, d: usize| {
        difference_similarity(
            &prepared[a],
            &prepared[b],
            &prepared[c],
            &prepared[d],
            faer::Par::Seq,
        )
        .unwrap()
    };
    let doc = stdout_json(&tensim(&[
        "diff",
        s(&paths[0]),
        s(&paths[1]),
        s(&paths[2]),
        s(&paths[3]),
        "--json",
    ]));
    let sim = doc["similarity"].as_array().unwrap();
    assert_eq!(sim.len(), 3);
    assert!((sim[0][2].as_f64().unwrap() - direct(0, 1, 2, 3).total).abs() < 1e-10);
    assert!((sim[1][1].as_f64().unwrap() - 1.0).abs() < 1e-10);
    // Against a reference update, one class slice.
    let doc = stdout_json(&tensim(&[
        "diff",
        s(&paths[0]),
        s(&paths[1]),
        s(&paths[2]),
        "--reference",
        s(&paths[2]),
        s(&paths[3]),
        "--class",
        "1",
        "--json",
    ]));
    let sim = doc["similarity"].as_array().unwrap();
    assert_eq!(sim.len(), 2);
    assert!((sim[0][0].as_f64().unwrap() - direct(0, 1, 2, 3).per_output[1]).abs() < 1e-10);
    assert!((sim[1][0].as_f64().unwrap() - direct(1, 2, 2, 3).per_output[1]).abs() < 1e-10);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../io/tests/fixtures")
        .join(name)
}

fn paper_spec(dir: &Path) -> PathBuf {
    let p = dir.join("paper.toml");
    std::fs::write(&p, "[[layers]]\nkind = \"bilinear\"\nfused = \"w\"\n[[layers]]\nkind = \"linear\"\nweight = \"p\"\n").unwrap();
    p
}

#[test]
fn foreign_formats_give_identical_numbers_and_convert() {
    let dir = tempfile::tempdir().unwrap();
    let spec = paper_spec(dir.path());
    let other = fixture("steps.pt");
    let value_for = |a: &Path| -> Vec<Value> {
        let m = stdout_json(&tensim(&[
            "matrix",
            s(a),
            s(&other),
            "--arch",
            s(&spec),
            "--json",
        ]));
        m["matrix"].as_array().unwrap().clone()
    };
    let reference = value_for(&fixture("classifier_f32.pt"));
    assert_eq!(reference.len(), 3, "the step file holds two checkpoints");
    for f in [
        "classifier.npz",
        "classifier.safetensors",
        "classifier_f64.pt",
        "classifier_bf16.pt",
    ] {
        assert_eq!(value_for(&fixture(f)), reference, "{f}");
    }
    // Converted to tensim's format, the numbers stay the same and need no spec.
    let out = dir.path().join("steps");
    let r = tensim(&["convert", s(&other), "--arch", s(&spec), "-o", s(&out)]);
    assert!(r.status.success(), "{}", stderr(&r));
    let single = dir.path().join("c.safetensors");
    assert!(tensim(&[
        "convert",
        s(&fixture("classifier_f32.pt")),
        "--arch",
        s(&spec),
        "-o",
        s(&single)
    ])
    .status
    .success());
    let m = stdout_json(&tensim(&["matrix", s(&single), s(&out), "--json"]));
    assert_eq!(m["matrix"].as_array().unwrap().clone(), reference);
    assert_eq!(m["labels"][1], "step 0");
    assert_eq!(m["labels"][2], "step 250");

    let doc = stdout_json(&tensim(&[
        "inspect",
        s(&fixture("classifier_f16.pt")),
        "--arch",
        s(&spec),
        "--json",
    ]));
    let tensors = doc["sets"][0]["tensors"].as_array().unwrap();
    assert!(tensors.iter().any(|t| t["name"] == "w"
        && t["dtype"] == "f16"
        && t["maps_to"].as_str().unwrap().contains("fused")));
    assert!(doc["models"][0]["source"]
        .as_str()
        .unwrap()
        .contains("converted"));
}

#[test]
fn foreign_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let spec = paper_spec(dir.path());
    let r = tensim(&[
        "compare",
        s(&fixture("evil.pt")),
        s(&fixture("classifier.npz")),
        "--arch",
        s(&spec),
    ]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("os.system"), "{}", stderr(&r));
    let r = tensim(&[
        "compare",
        s(&fixture("classifier_f32.pt")),
        s(&fixture("classifier.npz")),
    ]);
    assert!(stderr(&r).contains("--arch"), "{}", stderr(&r));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = tensim(&["matrix", s(&empty)]);
    assert!(stderr(&r).contains("no checkpoint files"), "{}", stderr(&r));
    let bad_spec = dir.path().join("bad.toml");
    std::fs::write(
        &bad_spec,
        "[[layers]]\nkind = \"bilinear\"\nfused = \"nope\"\n",
    )
    .unwrap();
    let r = tensim(&[
        "inspect",
        s(&fixture("classifier_f32.pt")),
        "--arch",
        s(&bad_spec),
    ]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_mentions(&out, &["`nope`", "missing"]);
}

/// Runs `tensim args` with stdout connected to `stdout`, returning the exit
/// status and stderr.
fn tensim_into(args: &[&str], stdout: std::process::Stdio) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args(args)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let a = save(dir.path(), "a.safetensors", &classifier(3, 1), 0);
    let b = save(dir.path(), "b.safetensors", &classifier(3, 2), 1);
    for args in [
        vec!["compare", s(&a), s(&b)],
        vec!["compare", s(&a), s(&b), "--json"],
        vec!["matrix", s(&a), s(&b)],
        vec!["inspect", s(&a)],
    ] {
        // A pipe whose reading end is closed before tensim writes: EPIPE.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tensim"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(err.is_empty(), "{args:?}: nothing on stderr, got {err}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_on_stdout_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = save(dir.path(), "a.safetensors", &classifier(3, 1), 0);
    let b = save(dir.path(), "b.safetensors", &classifier(3, 2), 1);
    for args in [vec!["compare", s(&a), s(&b)], vec!["matrix", s(&a), s(&b)]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let (status, err) = tensim_into(&args, full.into());
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn inspect_refuses_a_broken_tensim_file_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let a = save(dir.path(), "a.safetensors", &classifier(3, 1), 0);
    // The last 8 bytes are the last f64 of the last tensor: make it NaN.
    let mut bytes = std::fs::read(&a).unwrap();
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(&f64::NAN.to_le_bytes());
    std::fs::write(&a, bytes).unwrap();
    for args in [vec!["inspect", s(&a)], vec!["inspect", s(&a), "--json"]] {
        let r = tensim(&args);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
        assert_mentions(&err, &["a.safetensors", "non-finite"]);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
