//! `matrix --resume`, `matrix --shard K/N` and `merge`: matrices computed in
//! parts, killed and resumed, are byte-identical to one uninterrupted run;
//! parts that do not belong together are one-line errors and nothing is
//! written. And `changes`, which reads where a series changed from the
//! same pairwise machinery.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{stderr, tensim};
use tensim_core::network::Network;
use tensim_core::transformer::TransformerShape;
use tensim_core::{Architecture, LayerShape};
use tensim_io::{save_checkpoint, CheckpointMeta, StoredDtype};

fn save(dir: &Path, step: u64, network: Network) -> String {
    let path = dir.join(format!("step-{step:04}.safetensors"));
    let meta = CheckpointMeta {
        step: Some(step),
        phase: None,
        label: None,
    };
    save_checkpoint(&path, &network, &meta, StoredDtype::F64).unwrap();
    path.to_str().unwrap().to_string()
}

fn classifiers(dir: &Path, n: u64) -> Vec<String> {
    let arch = Architecture {
        layers: vec![LayerShape::bilinear(12, 6, 3)],
    };
    (0..n)
        .map(|s| save(dir, s, arch.random_model(s).unwrap().into()))
        .collect()
}

fn transformers(dir: &Path, n: u64) -> Vec<String> {
    let shape = TransformerShape::benchmark(1);
    (0..n)
        .map(|s| save(dir, s, shape.random_model(s).unwrap().into()))
        .collect()
}

fn run(files: &[String], extra: &[&str]) -> std::process::Output {
    let mut args = vec!["matrix"];
    args.extend(files.iter().map(String::as_str));
    args.extend(extra);
    tensim(&args)
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts that the files at `a` and `b` hold the same bytes (`what` names
/// the comparison when they do not).
fn assert_same_bytes(a: &Path, b: &Path, what: &str) {
    assert_eq!(
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap(),
        "{what}"
    );
}

/// Whole, sharded in three and merged, and resumed from a progress file a
/// crash cut mid-line: the same bytes.
fn check_parts(dir: &Path, files: &[String], metric: &[&str]) {
    let whole = path(dir, "whole.npy");
    assert!(run(files, &[metric, &["-o", s(&whole)]].concat())
        .status
        .success());
    let parts: Vec<PathBuf> = (0..3)
        .map(|k| path(dir, &format!("part-{k}.pairs")))
        .collect();
    for (k, part) in parts.iter().enumerate() {
        let shard = format!("{k}/3");
        let out = run(
            files,
            &[metric, &["--shard", &shard, "-o", s(part)]].concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!Path::new(&format!("{}.progress", s(part))).exists());
    }
    let merged = path(dir, "merged.npy");
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| s(p)));
    args.extend(["-o", s(&merged)]);
    let out = tensim(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_bytes(&merged, &whole, &format!("{metric:?} merged"));

    // A killed run's progress: part 0's pairs, its last line cut short.
    let resumed = path(dir, "resumed.npy");
    let progress = path(dir, "resumed.npy.progress");
    let text = std::fs::read_to_string(&parts[0]).unwrap();
    std::fs::write(&progress, &text[..text.len() - 7]).unwrap();
    let out = run(files, &[metric, &["--resume", "-o", s(&resumed)]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming"), "{}", stderr(&out));
    assert!(
        !progress.exists(),
        "the progress file goes once the matrix is written"
    );
    assert_same_bytes(&resumed, &whole, &format!("{metric:?} resumed"));
}

#[test]
fn sharded_merged_and_resumed_matrices_equal_one_run_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    let files = classifiers(&ckpt, 7);
    check_parts(dir.path(), &files, &["--metric", "tensor"]);
    check_parts(dir.path(), &files, &["--metric", "gaussian"]);
    // A directory argument stands for the checkpoints in it.
    check_parts(dir.path(), &[s(&ckpt).to_string()], &["--metric", "tensor"]);
    let tdir = tempfile::tempdir().unwrap();
    let files = transformers(tdir.path(), 4);
    check_parts(
        tdir.path(),
        &files,
        &["--metric", "gaussian", "--positions", "2"],
    );
}

/// Killed at whatever moment the clock gives, then resumed: the same bytes.
#[test]
fn a_run_killed_at_any_moment_resumes_to_the_same_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let files = classifiers(dir.path(), 40);
    let whole = path(dir.path(), "whole.npy");
    assert!(run(&files, &["--metric", "gaussian", "-o", s(&whole)])
        .status
        .success());
    for delay_ms in [50, 150, 400] {
        let out = path(dir.path(), &format!("killed-{delay_ms}.npy"));
        let mut args = vec!["matrix".to_string()];
        args.extend(files.iter().cloned());
        args.extend(["--metric", "gaussian", "--resume", "-o", s(&out)].map(String::from));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tensim"))
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let again = run(&files, &["--metric", "gaussian", "--resume", "-o", s(&out)]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert_same_bytes(&out, &whole, &format!("killed after {delay_ms} ms"));
    }
}

#[test]
fn parts_that_do_not_belong_together_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = classifiers(dir.path(), 5);
    let part = |name: &str, metric: &str, k: usize| {
        let p = path(dir.path(), name);
        let shard = format!("{k}/2");
        assert!(run(
            &files,
            &["--metric", metric, "--shard", &shard, "-o", s(&p)]
        )
        .status
        .success());
        p
    };
    let (t0, t1, g1) = (
        part("t0.pairs", "tensor", 0),
        part("t1.pairs", "tensor", 1),
        part("g1.pairs", "gaussian", 1),
    );
    let out = path(dir.path(), "m.npy");
    let merge = |parts: &[&PathBuf]| {
        let mut args = vec!["merge"];
        args.extend(parts.iter().map(|p| s(p)));
        args.extend(["-o", s(&out)]);
        let r = tensim(&args);
        assert!(!r.status.success());
        assert!(!out.exists(), "nothing is written");
        let err = stderr(&r);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        err
    };
    assert!(merge(&[&t0, &g1]).contains("different computations"));
    assert!(merge(&[&t0]).contains("in none of the 1 parts"));
    assert!(merge(&[&t0, &t1, &t1]).contains("overlapping shards"));

    // A progress file of another computation, or a corrupt one.
    let progress = path(dir.path(), "m.npy.progress");
    std::fs::copy(&g1, &progress).unwrap();
    let r = run(&files, &["--metric", "tensor", "--resume", "-o", s(&out)]);
    assert!(
        !r.status.success() && stderr(&r).contains("another computation"),
        "{}",
        stderr(&r)
    );
    let mut text = std::fs::read_to_string(&t0).unwrap();
    text.insert_str(text.find("pair ").unwrap(), "pair 9 x\n");
    std::fs::write(&progress, text).unwrap();
    let r = run(&files, &["--metric", "tensor", "--resume", "-o", s(&out)]);
    assert!(
        !r.status.success() && stderr(&r).contains("m.npy.progress: line"),
        "{}",
        stderr(&r)
    );
    assert!(!out.exists());

    // A shard's part is not a matrix, and both modes need -o.
    let r = run(
        &files,
        &["--shard", "0/2", "-o", s(&path(dir.path(), "p.npy"))],
    );
    assert!(stderr(&r).contains("name it .pairs"), "{}", stderr(&r));
    assert!(stderr(&run(&files, &["--resume"])).contains("give -o"));
    assert!(stderr(&run(&files, &["--shard", "2/2", "-o", "x.pairs"])).contains("0 ≤ K < N"));
}

/// A series in which every class drifts a little and class 2's output
/// direction changes at checkpoint 6: `changes` names both, from the
/// weights alone.
#[test]
fn changes_finds_the_boundary_and_the_class_that_changed() {
    use tensim_core::{Mat, Model};
    let dir = tempfile::tempdir().unwrap();
    let wave = |seed: f64| move |i: usize, j: usize| ((i * 7 + j * 3) as f64 * 0.37 + seed).sin();
    let files: Vec<String> = (0..12u64)
        .map(|t| {
            let eps = 0.03 * t as f64;
            let left = Mat::from_fn(6, 12, |i, j| {
                wave(1.0)(i, j) + eps * wave(10.0 + t as f64)(i, j)
            });
            let right = Mat::from_fn(6, 12, |i, j| {
                wave(2.0)(i, j) + eps * wave(20.0 + t as f64)(i, j)
            });
            let head = Mat::from_fn(4, 6, |i, j| {
                let moved = if i == 2 && t >= 6 {
                    1.5 * wave(7.0)(i, j)
                } else {
                    0.0
                };
                wave(3.0)(i, j) + moved + 0.01 * wave(30.0 + t as f64)(i, j)
            });
            let model = Model::bilinear_classifier(left, right, head).unwrap();
            save(dir.path(), t * 100, model.into())
        })
        .collect();
    let mut args = vec!["changes"];
    args.extend(files.iter().map(String::as_str));
    args.push("--json");
    let out = tensim(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = common::json_of(&out);
    let first = &doc["changes"][0];
    assert_eq!(first["boundary"], 6, "{doc}");
    assert_eq!(first["output"], 2, "{doc}");
    assert!(
        first["strength_sd"].as_f64().unwrap_or(f64::INFINITY) > 3.0,
        "{doc}"
    );

    let mut args = vec!["changes"];
    args.extend(files.iter().take(3).map(String::as_str));
    assert!(stderr(&tensim(&args)).contains("at least 4 checkpoints"));
}
