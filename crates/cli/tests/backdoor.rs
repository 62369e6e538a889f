//! The backdoor experiment end to end (`--quick`), on the bundled MNIST.

mod common;

use std::path::Path;

use common::tensim;

use serde_json::Value;
use tensim_io::read_matrix;

#[test]
fn quick_backdoor_run_writes_everything_and_detects_the_attack() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let r = tensim(&[
        "experiment",
        "backdoor",
        "--quick",
        "--out",
        out_s,
        "--json",
    ]);
    assert!(
        r.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let outcome: Value = serde_json::from_slice(&r.stdout).unwrap();

    for f in [
        "report.md",
        "metrics.jsonl",
        "settings.json",
        "figures/backdoor.png",
        "figures/tensor-slices.png",
        "figures/baselines.png",
        "figures/panel-tensor-class9.png",
        "checkpoints/step-000000.safetensors",
        "checkpoints/step-000800.safetensors",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        17,
        "checkpoints every 50 steps over 800 steps"
    );

    let keys = [
        "tensor",
        "matrix-cosine",
        "output-clean",
        "output-triggered",
        "output-class2",
        "output-class9",
        "output-union",
        "cka-logits",
    ];
    let slices: Vec<String> = (0..10).map(|c| format!("tensor-class{c}")).collect();
    for key in keys.iter().map(|k| k.to_string()).chain(slices) {
        let (labels, csv) = read_matrix(&out.join(format!("matrices/{key}.csv"))).unwrap();
        let (_, npy) = read_matrix(&out.join(format!("matrices/{key}.npy"))).unwrap();
        assert_eq!(csv, npy, "{key}: CSV and NPY hold the same numbers");
        assert_eq!(labels.len(), 17);
        for i in 0..17 {
            assert!(
                (csv[(i, i)] - 1.0).abs() < 1e-9,
                "{key}: diagonal {}",
                csv[(i, i)]
            );
            for j in 0..17 {
                assert_eq!(csv[(i, j)], csv[(j, i)], "{key}: symmetric");
                assert!(csv[(i, j)].is_finite());
            }
        }
    }
    let before = outcome["attack_success_before"].as_f64().unwrap();
    let after = outcome["attack_success_after"].as_f64().unwrap();
    assert!(after > before + 0.3, "attack success {before} → {after}");
    assert!(outcome["final_test_accuracy"].as_f64().unwrap() > 0.8);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Largest change: class"), "{report}");

    // A second run into the same directory is refused without --force.
    let again = tensim(&["experiment", "backdoor", "--quick", "--out", out_s]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn bad_data_arguments_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let r = tensim(&[
        "experiment",
        "backdoor",
        "--quick",
        "--out",
        out_s,
        "--data",
        "cifar",
    ]);
    assert!(!r.status.success());
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(e.contains("cifar") && e.contains("mnist"), "{e}");
    let r = tensim(&[
        "experiment",
        "backdoor",
        "--quick",
        "--out",
        out_s,
        "--data",
        "svhn",
    ]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("--svhn-dir"));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = tensim(&[
        "experiment",
        "backdoor",
        "--quick",
        "--out",
        out_s,
        "--data",
        "svhn",
        "--svhn-dir",
        empty.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && e.contains("train_32x32.mat"), "{e}");
    let r = tensim(&[
        "experiment",
        "backdoor",
        "--quick",
        "--out",
        out_s,
        "--data",
        "digits",
    ]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && e.contains("does not fit"), "{e}");
    let r = tensim(&["experiment", "grokking", "--steps", "1", "--out", out_s]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("too few"));
    assert!(!Path::new(&out).exists(), "nothing written on bad input");
}

#[test]
fn quick_forgetting_and_grokking_runs_write_their_reports() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("forgetting");
    let r = tensim(&[
        "experiment",
        "forgetting",
        "--quick",
        "--out",
        f.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        r.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let o: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(o["stage_names"].as_array().unwrap().len(), 9);
    assert_eq!(o["remove9_class_change"].as_array().unwrap().len(), 10);
    for file in [
        "report.md",
        "figures/forgetting.png",
        "figures/per-digit-accuracy.png",
        "matrices/gaussian.npy",
        "matrices/stage-updates.csv",
    ] {
        assert!(f.join(file).is_file(), "missing {file}");
    }
    let (_, g) = read_matrix(&f.join("matrices/gaussian.npy")).unwrap();
    assert_eq!(g.nrows(), o["checkpoints"].as_u64().unwrap() as usize);

    let k = dir.path().join("grokking");
    let r = tensim(&[
        "experiment",
        "grokking",
        "--quick",
        "--steps",
        "600",
        "--out",
        k.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        r.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let o: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(
        o["final_train_accuracy"].as_f64().unwrap() > 0.2,
        "the model learns the training pairs"
    );
    assert_eq!(o["dominant_frequencies"].as_array().unwrap().len(), 5);
    for file in [
        "report.md",
        "figures/grokking.png",
        "matrices/tensor.csv",
        "matrices/frequencies.csv",
        "metrics.jsonl",
    ] {
        assert!(k.join(file).is_file(), "missing {file}");
    }
}
