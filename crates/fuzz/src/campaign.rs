//! A fuzzing campaign on one target: mutate a seed, write the mutant, load
//! it, and judge the outcome. Loading must end in a model or a refusal that
//! names the file; a panic, or a refusal that does not say which file, is a
//! failure, and its input is saved so it can become a regression file.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::mutate::{self, Rng};
use crate::targets::{Form, Target};

/// How long a campaign runs: until `time` has passed or `max_execs` inputs
/// were tried, whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub time: Duration,
    pub max_execs: u64,
}

/// What went wrong with one input.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The panic message, or the refusal that names no file.
    pub what: String,
    /// The input, saved under the campaign's failure directory.
    pub saved: PathBuf,
}

/// A campaign's counts.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub execs: u64,
    /// Inputs that loaded (valid mutants, kept as new seeds).
    pub loaded: u64,
    /// Inputs refused with an error naming the file.
    pub refused: u64,
    pub failures: Vec<Failure>,
    pub seconds: f64,
}

/// Loaded mutants kept as further seeds, at most this many.
const GROWN_SEEDS: usize = 64;

/// Runs `target` within `budget` from random stream `seed`; mutants are
/// written in `scratch`, failing inputs saved in `failures`.
pub fn run(
    target: &Target,
    budget: Budget,
    seed: u64,
    scratch: &Path,
    failures: &Path,
) -> std::io::Result<Report> {
    let mut rng = Rng::new(seed);
    let mut pool = target.seeds.clone();
    let mut report = Report::default();
    let start = Instant::now();
    let input = scratch.join(format!("mutant.{}", target.extension));
    while report.execs < budget.max_execs && start.elapsed() < budget.time {
        let base = &pool[rng.below(pool.len())];
        let other = &pool[rng.below(pool.len())];
        let bytes = mutant(target.form, base, other, &mut rng);
        std::fs::write(&input, &bytes)?;
        match judge(target, &input) {
            Ok(true) => {
                report.loaded += 1;
                if pool.len() < target.seeds.len() + GROWN_SEEDS {
                    pool.push(bytes);
                }
            }
            Ok(false) => report.refused += 1,
            Err(what) => {
                let saved = failures.join(format!(
                    "{}-{}.{}",
                    target.name, report.execs, target.extension
                ));
                std::fs::create_dir_all(failures)?;
                std::fs::write(&saved, &bytes)?;
                report.failures.push(Failure { what, saved });
            }
        }
        report.execs += 1;
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Loads `path` through `target`: `Ok(true)` loaded, `Ok(false)` refused
/// naming the file, `Err` a failure (panic, or a refusal naming no file).
pub fn judge(target: &Target, path: &Path) -> Result<bool, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.load)(path)));
    match outcome {
        Ok(Ok(())) => Ok(true),
        Ok(Err(message)) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| message.contains(&n)) {
                Ok(false)
            } else {
                Err(format!("refusal names no file: {message}"))
            }
        }
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {text}"))
        }
    }
}

/// One mutant of `base` in the target's form.
fn mutant(form: Form, base: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    match form {
        Form::Bytes => mutate::bytes(base, other, rng),
        Form::Text => mutate::text(base, other, rng),
        Form::Zip if rng.below(4) == 0 => mutate::bytes(base, other, rng),
        Form::Zip => rezip_mutated(base, rng).unwrap_or_else(|| mutate::bytes(base, other, rng)),
    }
}

/// `archive` with one entry mutated (the pickle or header-bearing entry
/// most often), rebuilt with valid checksums; `None` if it is no zip.
fn rezip_mutated(archive: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).ok()?;
    let mut entries = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).ok()?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).ok()?;
        entries.push((entry.name().ok()?.to_string(), bytes));
    }
    if entries.is_empty() {
        return None;
    }
    let structural = entries
        .iter()
        .position(|(n, _)| n.ends_with(".pkl") || n.ends_with(".npy"));
    let hit = match structural {
        Some(i) if rng.below(3) != 0 => i,
        _ => rng.below(entries.len()),
    };
    let other = entries[rng.below(entries.len())].1.clone();
    entries[hit].1 = mutate::bytes(&entries[hit].1, &other, rng);
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in &entries {
        out.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .ok()?;
        std::io::Write::write_all(&mut out, bytes).ok()?;
    }
    Some(out.finish().ok()?.into_inner())
}

/// Loads every saved failure of `target` in `dir` (a regression corpus):
/// each must now load or be refused naming the file.
pub fn replay(target: &Target, dir: &Path) -> std::io::Result<Vec<Failure>> {
    let mut failures = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(failures);
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths {
        if let Err(what) = judge(target, &path) {
            failures.push(Failure { what, saved: path });
        }
    }
    Ok(failures)
}
