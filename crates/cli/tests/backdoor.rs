//! The backdoor experiment end to end (`--quick`), on the bundled MNIST.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_mentions, json_of, stderr, tensim};

use serde_json::Value;
use tensim_io::read_matrix;

/// Runs `tensim experiment <args…> --out <out> --json` and returns the
/// outcome it printed (the run must succeed).
fn experiment_json(args: &[&str], out: &Path) -> Value {
    let mut argv = vec!["experiment"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--out", out.to_str().unwrap(), "--json"]);
    json_of(&tensim(&argv))
}

/// Asserts that each of `files` (relative paths) is a file below `dir`.
fn assert_files(dir: &Path, files: &[&str]) {
    for f in files {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
}

#[test]
fn quick_backdoor_run_writes_everything_and_detects_the_attack() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let outcome = experiment_json(&["backdoor", "--quick"], &out);

    assert_files(
        &out,
        &[
            "report.md",
            "metrics.jsonl",
            "settings.json",
            "figures/backdoor.png",
            "figures/tensor-slices.png",
            "figures/baselines.png",
            "figures/panel-tensor-class9.png",
            "checkpoints/step-000000.safetensors",
            "checkpoints/step-000800.safetensors",
        ],
    );
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
    let out_s = out.to_str().unwrap();
    let again = tensim(&["experiment", "backdoor", "--quick", "--out", out_s]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"));
}

#[test]
fn bad_data_arguments_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    // `tensim experiment backdoor --quick --out <out>` with `data_args`.
    let backdoor_with = |data_args: &[&str]| -> Output {
        let mut argv = vec!["experiment", "backdoor", "--quick", "--out", out_s];
        argv.extend_from_slice(data_args);
        tensim(&argv)
    };
    let r = backdoor_with(&["--data", "cifar"]);
    assert!(!r.status.success());
    let e = stderr(&r);
    assert_mentions(&e, &["cifar", "mnist"]);
    let r = backdoor_with(&["--data", "svhn"]);
    assert!(stderr(&r).contains("--svhn-dir"));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = backdoor_with(&["--data", "svhn", "--svhn-dir", empty.to_str().unwrap()]);
    let e = stderr(&r);
    assert!(!r.status.success() && e.contains("train_32x32.mat"), "{e}");
    let r = backdoor_with(&["--data", "digits"]);
    let e = stderr(&r);
    assert!(!r.status.success() && e.contains("does not fit"), "{e}");
    let r = tensim(&["experiment", "grokking", "--steps", "1", "--out", out_s]);
    assert!(stderr(&r).contains("too few"));
    let forgetting_with = |data: &str| {
        tensim(&[
            "experiment",
            "forgetting",
            "--quick",
            "--data",
            data,
            "--out",
            out_s,
        ])
    };
    let r = forgetting_with("svhn");
    assert!(!r.status.success() && stderr(&r).contains("--svhn-dir"));
    let r = forgetting_with("cifar");
    assert_mentions(&stderr(&r), &["cifar", "mnist"]);
    assert!(!Path::new(&out).exists(), "nothing written on bad input");
}

#[test]
fn quick_forgetting_and_grokking_runs_write_their_reports() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("forgetting");
    let o = experiment_json(&["forgetting", "--quick"], &f);
    assert_eq!(o["stage_names"].as_array().unwrap().len(), 9);
    assert_eq!(o["remove9_class_change"].as_array().unwrap().len(), 10);
    assert_files(
        &f,
        &[
            "report.md",
            "figures/forgetting.png",
            "figures/per-digit-accuracy.png",
            "matrices/gaussian.npy",
            "matrices/stage-updates.csv",
        ],
    );
    let (_, g) = read_matrix(&f.join("matrices/gaussian.npy")).unwrap();
    assert_eq!(g.nrows(), o["checkpoints"].as_u64().unwrap() as usize);
    let settings = std::fs::read_to_string(f.join("settings.json")).unwrap();
    assert_mentions(&settings, &["\"dataset\": \"mnist\"", "\"inputs\": 784"]);

    // The same curriculum on the bundled 8×8 digits (64 inputs).
    let d = dir.path().join("forgetting-digits");
    let o = experiment_json(&["forgetting", "--quick", "--data", "digits"], &d);
    assert_eq!(o["remove9_class_change"].as_array().unwrap().len(), 10);
    let report = std::fs::read_to_string(d.join("report.md")).unwrap();
    assert_mentions(
        &report,
        &["embed 64→128", "8×8 digits", "capped at 2 % per step"],
    );

    let k = dir.path().join("grokking");
    let o = experiment_json(&["grokking", "--quick", "--steps", "600"], &k);
    assert!(
        o["final_train_accuracy"].as_f64().unwrap() > 0.2,
        "the model learns the training pairs"
    );
    assert_eq!(o["dominant_frequencies"].as_array().unwrap().len(), 5);
    assert_files(
        &k,
        &[
            "report.md",
            "figures/grokking.png",
            "matrices/tensor.csv",
            "matrices/frequencies.csv",
            "metrics.jsonl",
        ],
    );
}
