//! `tensim experiment … --resume`: a run killed (SIGKILL) after some of its
//! checkpoints continues from the last one, a run killed in its matrix
//! stage from the pairs it finished, and both end with the files of an
//! uninterrupted run, byte for byte (checkpoints, metrics, matrices,
//! settings); a resume with other settings is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_mentions, stderr, tensim};

fn experiment(args: &[&str], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut argv = vec!["experiment"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--out", out.to_str().unwrap()]);
    argv.extend_from_slice(extra);
    tensim(&argv)
}

/// The largest count of `file`'s lines starting with `prefix` in the
/// partial directories of the run of `out`.
fn partial_lines(out: &Path, file: &str, prefix: &str) -> usize {
    let parent = out.parent().unwrap();
    let partial = format!(".{}.partial-", out.file_name().unwrap().to_str().unwrap());
    std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&partial))
        .filter_map(|e| std::fs::read_to_string(e.path().join(file)).ok())
        .map(|t| t.lines().filter(|l| l.starts_with(prefix)).count())
        .max()
        .unwrap_or(0)
}

/// Lines of `metrics.jsonl` in the partial directory of the run of `out`.
fn recorded(out: &Path) -> usize {
    partial_lines(out, "metrics.jsonl", "")
}

/// Every file of the finished run `a` that training and the analysis write
/// (not the report, which states times), equal in `b`.
fn assert_same_run(a: &Path, b: &Path) {
    let mut files: Vec<PathBuf> = vec!["metrics.jsonl".into(), "settings.json".into()];
    for sub in ["checkpoints", "matrices"] {
        for entry in std::fs::read_dir(a.join(sub)).unwrap().flatten() {
            files.push(Path::new(sub).join(entry.file_name()));
        }
    }
    assert!(files.len() > 6, "{files:?}");
    for f in files {
        let (x, y) = (std::fs::read(a.join(&f)), std::fs::read(b.join(&f)));
        assert!(x.is_ok() && x.ok() == y.ok(), "{} differs", f.display());
    }
    assert!(
        !b.join("resume.safetensors").exists(),
        "the resume state is removed"
    );
}

/// Runs `args` whole, then again killed once `progress(out) ≥ kill_after`,
/// resumed, and compares the two runs; returns the resumed run's stderr.
fn killed_and_resumed_when(
    args: &[&str],
    progress: impl Fn(&Path) -> usize,
    kill_after: usize,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let out = experiment(args, &whole, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let resumed = dir.path().join("resumed");
    let mut argv: Vec<&str> = vec!["experiment"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--out", resumed.to_str().unwrap()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args(&argv)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while progress(&resumed) < kill_after && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!resumed.exists(), "a killed run leaves no run directory");
    let n = progress(&resumed);
    assert!(n >= kill_after, "killed at {n}");
    let again = experiment(args, &resumed, &["--resume"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_mentions(&stderr(&again), &["resuming the interrupted run"]);
    assert_same_run(&whole, &resumed);
    stderr(&again)
}

/// [`killed_and_resumed_when`] `kill_after` checkpoints are recorded.
fn killed_and_resumed(args: &[&str], kill_after: usize) {
    killed_and_resumed_when(args, recorded, kill_after);
}

#[test]
fn a_killed_grokking_run_resumes_to_the_same_files() {
    killed_and_resumed(&["grokking", "--quick", "--steps", "800"], 9);
}

/// Through the curriculum: a new trainer every stage, resumed inside one.
#[test]
fn a_killed_forgetting_run_resumes_to_the_same_files() {
    killed_and_resumed(&["forgetting", "--quick"], 5);
}

/// Killed inside its matrix stage (52 checkpoints, 1,378 Gaussian pairs):
/// the resumed run takes the finished pairs from the progress file and
/// computes only the rest.
#[test]
fn a_forgetting_run_killed_in_its_matrices_resumes_from_the_finished_pairs() {
    let pairs = |out: &Path| partial_lines(out, "progress/gaussian.pairs", "pair ");
    let said = killed_and_resumed_when(&["forgetting", "--epochs", "0.05"], pairs, 40);
    let known: usize = said
        .split_once("gaussian: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of finished pairs in: {said}"));
    assert!(
        (40..1378).contains(&known),
        "{known} pairs were known: {said}"
    );
}

#[test]
fn resuming_with_other_settings_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let argv = [
        "experiment",
        "grokking",
        "--quick",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args(argv)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while recorded(&out) < 3 && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let other = experiment(&["grokking", "--quick", "--seed", "2"], &out, &["--resume"]);
    assert!(!other.status.success());
    assert_mentions(&stderr(&other), &["other settings", "--resume"]);
    assert!(!out.exists());
    assert!(recorded(&out) >= 3, "the interrupted run is kept");
    let none = dir.path().join("fresh");
    let fresh = experiment(
        &["grokking", "--quick", "--steps", "200"],
        &none,
        &["--resume"],
    );
    assert!(fresh.status.success(), "{}", stderr(&fresh));
    assert_mentions(&stderr(&fresh), &["no interrupted run", "starting one"]);
}
