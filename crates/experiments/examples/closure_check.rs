//! Checks the `gaussian` value of two transformer checkpoints (exact moments
//! or Gaussian closure, MATH.md §3.7) against Monte-Carlo estimates of the
//! same cosine at growing sample counts and several seeds (the language
//! experiment's scale-safe estimator), so that a disagreement can be told
//! from sampling noise and from heavy tails.
//!
//! ```text
//! cargo run --release -p tensim-experiments --example closure_check -- A.safetensors B.safetensors [positions] [max samples]
//! ```

use std::path::Path;

use anyhow::{bail, Context, Result};
use tensim_core::network::Network;
use tensim_core::sequence::sequence_similarity;
use tensim_core::transformer::Transformer;
use tensim_experiments::language::monte_carlo_cosine;

fn load(path: &str) -> Result<Transformer> {
    let ckpt = tensim_io::load_checkpoint(Path::new(path)).with_context(|| path.to_string())?;
    match ckpt.network {
        Network::Transformer(t) => Ok(t),
        Network::Sequential(_) => bail!("{path} is not a transformer"),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        bail!("usage: closure_check A B [positions = 4] [max samples = 160000]");
    }
    let (a, b) = (load(&args[0])?, load(&args[1])?);
    let positions: usize = args.get(2).map_or(Ok(4), |s| s.parse())?;
    let max: usize = args.get(3).map_or(Ok(160_000), |s| s.parse())?;
    let (sim, exactness) = sequence_similarity(&a, &b, positions)?;
    println!(
        "gaussian ({}), {positions} positions: {:.4}",
        exactness.describe(),
        sim.total
    );
    let mut samples = 10_000usize;
    while samples <= max {
        for seed in 0..3u64 {
            let (value, se, share) = monte_carlo_cosine(&a, &b, positions, samples, seed)?;
            println!(
                "monte-carlo {samples:>7} samples, seed {seed}: {value:.4} ± {se:.4}  \
                 (gaussian − MC = {:+.4}, {:+.1} SE; largest single-sequence share {share:.3})",
                sim.total - value,
                (sim.total - value) / se
            );
        }
        samples *= 4;
    }
    Ok(())
}
