//! `tensim experiment …`: the paper's demonstrations, end to end, each into
//! its own run directory.

pub mod backdoor;
pub mod backdoor_report;
pub mod figures;
pub mod forgetting;
pub mod grokking;
pub mod language;
pub mod run_dir;
pub mod similarity_suite;

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
