//! Which steps get a checkpoint.

use crate::{Result, TrainError};

/// A checkpoint schedule over `0..=total` steps.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// Steps `0, k, 2k, …, total`.
    Every(u64),
    /// Exactly these steps.
    List(Vec<u64>),
    /// `int(total · (i/(count−1))^exponent)` for `i = 0..count`, deduplicated
    /// (EXPERIMENTS §3 uses exponent 5, 100 points).
    Power { count: usize, exponent: f64 },
    /// Step 0 and `count − 1` log-spaced steps from 1 to `total`, deduplicated.
    Log { count: usize },
}

impl Schedule {
    /// Sorted, deduplicated checkpoint steps within `0..=total`.
    pub fn steps(&self, total: u64) -> Result<Vec<u64>> {
        let mut steps: Vec<u64> = match self {
            Schedule::Every(0) => {
                return Err(TrainError::Invalid(
                    "checkpoint interval must be positive".into(),
                ))
            }
            Schedule::Every(k) => (0..=total).step_by(*k as usize).collect(),
            Schedule::List(list) => list.iter().copied().filter(|&s| s <= total).collect(),
            Schedule::Power { count, exponent } => {
                let n = (*count).max(2);
                (0..n)
                    .map(|i| (total as f64 * (i as f64 / (n - 1) as f64).powf(*exponent)) as u64)
                    .collect()
            }
            Schedule::Log { count } => {
                let n = (*count).max(2);
                let top = (total.max(1) as f64).ln();
                std::iter::once(0)
                    .chain(
                        (0..n - 1)
                            .map(|i| (top * i as f64 / (n - 2).max(1) as f64).exp().round() as u64),
                    )
                    .collect()
            }
        };
        steps.sort_unstable();
        steps.dedup();
        Ok(steps)
    }
}
