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
