//! # tensim-experiments
//!
//! The paper's demonstrations as a library, end to end, each into its own run
//! directory (`tensim experiment …` is a thin front end over it):
//!
//! * [`backdoor`]: backdoor insertion detected from tensor similarity (EXPERIMENTS §1);
//! * [`forgetting`]: class-incremental curriculum and forgetting (EXPERIMENTS §2);
//! * [`grokking`]: grokking modular addition (EXPERIMENTS §3);
//! * [`language`]: bilinear-attention transformers on Shakespeare (EXPERIMENTS §4).
//!
//! Each has an `Options` struct (what the caller chooses), a `Settings`
//! struct (everything derived from it, written to `settings.json`), an
//! `Outcome` (everything measured) and `run(&Options) -> Result<Outcome>`,
//! which goes through the same stages in private submodules: settings →
//! `train` → `analysis` → `figures` → `report`.
//!
//! The shared pieces: [`run_dir`] (the run directory), [`recorder`]
//! (checkpoints, `metrics.jsonl` and the in-memory trajectory of every
//! experiment), [`similarity_suite`] (the matrices over checkpoints),
//! [`pair_progress`] (their finished pairs, for `--resume`),
//! [`figures`] (common panels) and [`progress`] (progress bars on stderr).
//! Errors are [`anyhow::Error`]s: the experiments are top-level orchestration
//! over the other crates' concrete errors.

pub mod backdoor;
pub mod figures;
pub mod forgetting;
pub mod grokking;
pub mod language;
mod markdown;
pub mod pair_progress;
pub mod progress;
pub mod recorder;
pub mod resume;
pub mod run_dir;
pub mod similarity_suite;

/// The options of an experiment trained for a number of steps (grokking and
/// language): what the caller chooses, the CLI's flags.
pub struct StepOptions {
    /// Run directory (refused if it holds a run, unless `force`).
    pub out: std::path::PathBuf,
    /// Overwrite an existing run directory.
    pub force: bool,
    /// Continue the run a killed process left (else start one).
    pub resume: bool,
    /// A reduced run for tests and a first look.
    pub quick: bool,
    /// Training steps (the experiment's default when `None`).
    pub steps: Option<u64>,
    /// Seed of data order and initialisation.
    pub seed: u64,
}

/// The run directory of an experiment, `settings` (JSON) written into it.
/// With `resume`, the interrupted run beside `out` when there is one (said
/// on stderr), refused if it was started with other settings; else a new
/// run.
pub fn start_run(
    out: &std::path::Path,
    force: bool,
    resume: bool,
    settings: &str,
) -> anyhow::Result<run_dir::RunDir> {
    if resume {
        if let Some(partial) = run_dir::RunDir::abandoned(out)? {
            let path = partial.join("settings.json");
            let before = std::fs::read_to_string(&path).unwrap_or_default();
            if before != settings {
                anyhow::bail!(
                    "the interrupted run of {} was started with other settings ({}); rerun it \
                     with the same flags, or without --resume to start over",
                    out.display(),
                    path.display()
                );
            }
            eprintln!("resuming the interrupted run of {}", out.display());
            return run_dir::RunDir::take_over(out, &partial);
        }
        eprintln!(
            "no interrupted run of {} to resume: starting one",
            out.display()
        );
    }
    let run = run_dir::RunDir::create(out, force)?;
    run.write_text("settings.json", settings)?;
    Ok(run)
}

/// The checkpoint steps of `schedule` over `steps` training steps; an
/// experiment that looks for changes between checkpoints needs at least 4.
pub fn checkpoint_steps(schedule: tensim_train::Schedule, steps: u64) -> anyhow::Result<Vec<u64>> {
    let at = schedule.steps(steps)?;
    if at.len() < 4 {
        anyhow::bail!(
            "--steps {steps} gives {} distinct checkpoints with this schedule: too few (at least 4 are needed)",
            at.len()
        );
    }
    Ok(at)
}
