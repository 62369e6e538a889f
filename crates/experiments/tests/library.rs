//! The experiments through the library API, without the binary: the shared
//! recorder on its own, and a short forgetting run end to end (its outputs,
//! matrices and recorded steps), plus the refusal to overwrite a run.

use serde_json::Value;
use tensim_core::network::Network;
use tensim_core::Residual;
use tensim_core::{Architecture, LayerShape, Model};
use tensim_experiments::forgetting;
use tensim_experiments::recorder::Recorder;
use tensim_experiments::run_dir::RunDir;
use tensim_io::{load_checkpoint, read_matrix};

fn metrics(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn recorder_writes_checkpoints_and_metrics_and_keeps_each_series() {
    #[derive(Clone, serde::Serialize)]
    struct Record {
        step: u64,
        loss: f64,
    }
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(&dir.path().join("run"), false).unwrap();
    let arch = Architecture {
        layers: vec![LayerShape::Bilinear {
            input: 3,
            hidden: 4,
            output: 2,
            left_bias: false,
            right_bias: false,
            down_bias: false,
            residual: Residual::None,
        }],
    };
    let mut recorder: Recorder<Model, Record> = Recorder::new(&run);
    for step in [0, 5] {
        let model = arch.random_model(step).unwrap();
        let record = Record { step, loss: 1.0 };
        recorder
            .record(model, step, None, format!("step {step}"), record)
            .unwrap();
    }
    let first = recorder.take_series();
    recorder.start_series("b-");
    let model = arch.random_model(9).unwrap();
    let record = Record { step: 9, loss: 0.5 };
    recorder
        .record(model, 9, Some("b".into()), "b 9".into(), record)
        .unwrap();
    let second = recorder.take_series();

    assert_eq!(first.len(), 2);
    assert_eq!(first.records[1].step, 5);
    assert_eq!(first.files[1], "checkpoints/step-000005.safetensors");
    assert_eq!(second.len(), 1);
    assert_eq!(second.files, ["checkpoints/b-step-000009.safetensors"]);
    // metrics.jsonl holds every record of the run, its checkpoint last.
    let lines = std::fs::read_to_string(run.path("metrics.jsonl")).unwrap();
    assert_eq!(
        lines,
        "{\"step\":0,\"loss\":1.0,\"checkpoint\":\"checkpoints/step-000000.safetensors\"}\n\
         {\"step\":5,\"loss\":1.0,\"checkpoint\":\"checkpoints/step-000005.safetensors\"}\n\
         {\"step\":9,\"loss\":0.5,\"checkpoint\":\"checkpoints/b-step-000009.safetensors\"}\n"
    );
    // The checkpoints reload to the recorded models (f32, as trained).
    let loaded = load_checkpoint(&run.path(&second.files[0])).unwrap();
    assert_eq!(loaded.meta.step, Some(9));
    assert_eq!(loaded.meta.label.as_deref(), Some("b 9"));
    match loaded.network {
        Network::Sequential(m) => {
            let (a, b) = (m.parameters(), second.models[0].parameters());
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                assert_eq!(*x, f64::from(*y as f32));
            }
        }
        Network::Transformer(_) => panic!("expected a sequential model"),
    }
}

#[test]
fn short_forgetting_run_through_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forgetting");
    // --quick with a twentieth of an epoch per stage: one checkpoint at the
    // start and one at the end of each of the nine stages.
    let opts = forgetting::Options {
        out: out.clone(),
        force: false,
        resume: false,
        quick: true,
        epochs: Some(0.05),
        weight_decay: None,
        data: "mnist".into(),
        svhn_dir: None,
        seed: 7,
    };
    let o = forgetting::run(&opts).unwrap();
    assert_eq!(o.run_dir, out);
    for file in [
        "report.md",
        "settings.json",
        "figures/forgetting.png",
        "figures/class-slices.png",
        "figures/panel-gaussian-class9.png",
    ] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let top = o.remove9_class_change[0].0;
    assert!(report.contains(&format!("**Largest change: class {top}**")));
    assert_eq!(o.stage_names.len(), 9);
    assert_eq!(o.stage_similarity.len(), 9);

    // One metrics line per checkpoint, in step order, each with its stage
    // and checkpoint file; the per-digit accuracies are fractions.
    let lines = metrics(&out);
    let n = o.checkpoints;
    assert_eq!(lines.len(), n);
    assert_eq!(n, 10);
    let steps: Vec<u64> = lines.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps[0], 0);
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    for (k, line) in lines.iter().enumerate().skip(1) {
        assert_eq!(line["stage_name"].as_str().unwrap(), o.stage_names[k - 1]);
        let file = line["checkpoint"].as_str().unwrap();
        assert_eq!(
            file,
            format!("checkpoints/step-{:06}.safetensors", steps[k])
        );
        assert!(out.join(file).is_file());
        let digits = line["per_digit_accuracy"].as_array().unwrap();
        assert_eq!(digits.len(), 10);
        assert!(digits
            .iter()
            .all(|d| (0.0..=1.0).contains(&d.as_f64().unwrap())));
    }
    let last: Vec<f64> =
        serde_json::from_value(lines[n - 1]["per_digit_accuracy"].clone()).unwrap();
    assert_eq!(last, o.final_per_digit_accuracy);

    // Gaussian similarity and its class slices: n × n, symmetric, unit diagonal.
    for key in [
        "gaussian",
        "gaussian-class0",
        "gaussian-class9",
        "cka-logits",
    ] {
        let (labels, m) = read_matrix(&out.join(format!("matrices/{key}.csv"))).unwrap();
        assert_eq!((m.nrows(), m.ncols()), (n, n), "{key}");
        assert_eq!(labels[n - 1], format!("re-add 9 @{}", steps[n - 1]));
        for i in 0..n {
            assert!((m[(i, i)] - 1.0).abs() < 1e-9, "{key}: {}", m[(i, i)]);
            for j in 0..n {
                assert!(m[(i, j)].is_finite(), "{key}");
                assert!((m[(i, j)] - m[(j, i)]).abs() < 1e-12, "{key}");
            }
        }
    }
    // Stage updates: 9 × 9 over the stage names; "add 9" against itself is 1.
    let (labels, updates) = read_matrix(&out.join("matrices/stage-updates.csv")).unwrap();
    assert_eq!((updates.nrows(), updates.ncols()), (9, 9));
    assert_eq!(labels, o.stage_names);
    let add9 = o.stage_names.iter().position(|s| s == "add 9").unwrap();
    assert!((updates[(add9, add9)] - 1.0).abs() < 1e-9);
    assert_eq!(o.update_similarity_to_add9[add9].1, updates[(add9, add9)]);

    // A second run into the same directory is refused without `force`.
    let e = forgetting::run(&opts).err().expect("refused");
    assert!(format!("{e:#}").contains("--force"), "{e:#}");
}

/// The names in `dir`, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A run appears whole or not at all: nothing at the target until it
/// finishes, nothing anywhere when it fails, an earlier run kept until the
/// new one is complete, and what a killed run left is cleared by the next.
#[test]
fn a_run_directory_appears_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("run");

    let run = RunDir::create(&target, false).unwrap();
    run.write_text("report.md", "first").unwrap();
    assert!(!target.exists(), "nothing lands before the run completes");
    assert_eq!(run.finish().unwrap(), target);
    assert_eq!(listing(dir.path()), ["run"]);
    assert_eq!(
        listing(&target),
        ["checkpoints", "figures", "matrices", "report.md"]
    );

    // A failing run (dropped unfinished) leaves the earlier run untouched.
    let err = RunDir::create(&target, false).err().unwrap().to_string();
    assert!(
        err.contains("already holds a run") && err.contains("--force"),
        "{err}"
    );
    let failed = RunDir::create(&target, true).unwrap();
    failed.write_text("report.md", "second").unwrap();
    drop(failed);
    assert_eq!(listing(dir.path()), ["run"]);
    assert_eq!(
        std::fs::read_to_string(target.join("report.md")).unwrap(),
        "first"
    );

    // A forced run replaces it only when complete.
    let second = RunDir::create(&target, true).unwrap();
    second.write_text("report.md", "second").unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("report.md")).unwrap(),
        "first"
    );
    second.finish().unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("report.md")).unwrap(),
        "second"
    );
    assert_eq!(listing(dir.path()), ["run"]);

    // A killed run's partial directory (its process is gone) is cleared.
    let killed = dir.path().join(".fresh.partial-4000000000");
    std::fs::create_dir_all(killed.join("checkpoints")).unwrap();
    let run = RunDir::create(&dir.path().join("fresh"), false).unwrap();
    if cfg!(target_os = "linux") {
        assert!(!killed.exists());
    }
    run.finish().unwrap();
}
