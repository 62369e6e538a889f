//! `tensim-fuzz [--seconds N] [--execs N] [--seed S] [--failures DIR] [TARGET…]`:
//! fuzzes each target (all by default) and prints executions, loads,
//! refusals and failures; exits 1 if any input failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tensim_fuzz::campaign::{self, Budget};
use tensim_fuzz::targets;

struct Args {
    seconds: f64,
    execs: u64,
    seed: u64,
    failures: PathBuf,
    targets: Vec<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seconds: 10.0,
        execs: u64::MAX,
        seed: 1,
        failures: PathBuf::from("fuzz-failures"),
        targets: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--seconds" => args.seconds = number(&value(&a)?)?,
            "--execs" => args.execs = number(&value(&a)?)? as u64,
            "--seed" => args.seed = number(&value(&a)?)? as u64,
            "--failures" => args.failures = PathBuf::from(value(&a)?),
            "-h" | "--help" => return Err(String::new()),
            name if !name.starts_with('-') => args.targets.push(name.to_string()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or(format!("`{text}` is not a non-negative number"))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
            eprintln!("{e}\nusage: tensim-fuzz [--seconds N] [--execs N] [--seed S] [--failures DIR] [TARGET…]\ntargets: {}", names.join(", "));
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<targets::Target> = if args.targets.is_empty() {
        targets::all()
    } else {
        let mut chosen = Vec::new();
        for name in &args.targets {
            match targets::by_name(name) {
                Some(t) => chosen.push(t),
                None => {
                    eprintln!("no target `{name}`");
                    return ExitCode::from(2);
                }
            }
        }
        chosen
    };
    let budget = Budget {
        time: Duration::from_secs_f64(args.seconds),
        max_execs: args.execs,
    };
    let scratch = tempfile::tempdir().expect("a scratch directory");
    println!(
        "{:<20}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "target", "execs", "execs/s", "loaded", "refused", "failed"
    );
    let mut failed = 0;
    for target in &chosen {
        let report = match campaign::run(target, budget, args.seed, scratch.path(), &args.failures)
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", target.name);
                return ExitCode::FAILURE;
            }
        };
        println!(
            "{:<20}{:>10}{:>10.0}{:>10}{:>10}{:>10}",
            target.name,
            report.execs,
            report.execs as f64 / report.seconds.max(1e-9),
            report.loaded,
            report.refused,
            report.failures.len()
        );
        for f in &report.failures {
            println!("  {} ({})", f.saved.display(), f.what);
        }
        failed += report.failures.len();
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
