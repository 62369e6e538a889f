//! Helpers the CLI's end-to-end tests share: running the binary and reading
//! what it prints.

#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

use serde_json::Value;

/// Runs the `tensim` binary with `args`.
pub fn tensim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args(args)
        .output()
        .expect("run tensim")
}

/// The one JSON document a successful run printed on stdout.
pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
}

/// What a run printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `text` contains every one of `needles`.
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
}
