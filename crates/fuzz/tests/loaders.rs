//! Every loader, fuzzed for a bounded time (`TENSIM_FUZZ_SECONDS`, default
//! 4 s per target) and its regression corpus replayed: no input panics, and
//! every refusal names the file.

use std::time::Duration;

use tensim_fuzz::campaign::{self, Budget};
use tensim_fuzz::{regressions, targets};

fn seconds() -> f64 {
    std::env::var("TENSIM_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0)
}

fn fuzz(name: &str) {
    let target = targets::by_name(name).expect("a target");
    for seed in &target.seeds {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("seed.{}", target.extension));
        std::fs::write(&path, seed).unwrap();
        assert_eq!(
            campaign::judge(&target, &path),
            Ok(true),
            "every seed of {name} loads"
        );
    }
    let replayed = campaign::replay(&target, &regressions(name)).unwrap();
    assert!(
        replayed.is_empty(),
        "regressions of {name} fail again: {replayed:?}"
    );
    let scratch = tempfile::tempdir().unwrap();
    let failures = tempfile::tempdir().unwrap();
    let budget = Budget {
        time: Duration::from_secs_f64(seconds()),
        max_execs: u64::MAX,
    };
    let report = campaign::run(&target, budget, 0x7e5, scratch.path(), failures.path()).unwrap();
    eprintln!("{name}: {report:?}");
    assert!(report.execs > 0);
    for f in &report.failures {
        let keep = std::env::temp_dir().join(f.saved.file_name().unwrap());
        let _ = std::fs::copy(&f.saved, &keep);
        eprintln!("failing input kept at {}: {}", keep.display(), f.what);
    }
    assert!(
        report.failures.is_empty(),
        "{name}: {} failing inputs",
        report.failures.len()
    );
}

#[test]
fn tensim_safetensors() {
    fuzz("tensim-safetensors");
}

#[test]
fn plain_safetensors() {
    fuzz("safetensors");
}

#[test]
fn pytorch_zip() {
    fuzz("pt");
}

#[test]
fn pytorch_legacy() {
    fuzz("pt-legacy");
}

#[test]
fn npz() {
    fuzz("npz");
}

#[test]
fn spec() {
    fuzz("spec");
}

#[test]
fn mat() {
    fuzz("mat");
}

#[test]
fn every_target_is_tested() {
    let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "tensim-safetensors",
            "safetensors",
            "pt",
            "pt-legacy",
            "npz",
            "spec",
            "mat"
        ]
    );
}
