//! Refusing, before any work, a job that would not fit in memory.

use std::path::Path;

use anyhow::{bail, Result};

/// Bytes this process may use: the kernel's `MemAvailable`, capped by
/// `TENSIM_MEMORY_LIMIT_MIB` when set (a job's allocation on a cluster).
fn available_bytes() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024.0)
    });
    let limit = std::env::var("TENSIM_MEMORY_LIMIT_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|mib| mib * 1048576.0);
    match (meminfo, limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Refuses a job of `models` transformer(s) on `positions` Gaussian positions
/// whose estimated peak memory `need` (the cost model's) exceeds what is
/// available; `first` names the job in the error.
pub fn check(need: f64, models: usize, positions: usize, first: &Path) -> Result<()> {
    if let Some(available) = available_bytes() {
        if need > available {
            let gib = |b: f64| b / 1073741824.0;
            bail!(
                "{}: comparing {models} transformer(s) of this size on {positions} Gaussian positions needs an estimated {:.2} GiB, more than the {:.2} GiB available (use fewer positions or checkpoints, or raise TENSIM_MEMORY_LIMIT_MIB)",
                first.display(),
                gib(need),
                gib(available)
            );
        }
    }
    Ok(())
}
