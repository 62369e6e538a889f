//! `compare` on two transformer checkpoints (bilinear attention): the exact
//! Gaussian metric through attention (MATH.md §3, sequences), per-token
//! slices, parameter cosine and Monte-Carlo. Matrices go through the core's
//! metric vocabulary (`tensim matrix`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::json;
use tensim_core::metric::positions_for;
use tensim_core::monte_carlo::sequence_monte_carlo;
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::transformer::Transformer;
use tensim_core::weight_cosine::parameter_cosine;
use tensim_core::Par;

use crate::load::Loaded;
use crate::options::MetricArgs;
use crate::{memory, progress};

use crate::stdout::outln;

fn prepare_all(
    models: &[&Transformer],
    positions: usize,
    first: &Loaded,
) -> Result<Vec<SequencePrepared>> {
    let geometry = Arc::new(SequenceGeometry::new(&models[0].shape(), positions)?);
    memory::check(
        geometry.peak_bytes(models.len()),
        models.len(),
        positions,
        &first.path,
    )?;
    let bar = progress::bar(models.len() as u64, "moments");
    let prepared = models
        .par_iter()
        .map(|m| {
            let p = SequencePrepared::new(m, geometry.clone());
            bar.inc(1);
            p
        })
        .collect::<Result<Vec<_>, _>>();
    bar.finish_and_clear();
    Ok(prepared?)
}

/// `tensim compare` of two transformer checkpoints.
pub fn compare(la: &Loaded, lb: &Loaded, args: &MetricArgs, json_out: bool) -> Result<()> {
    let (samples, seed) = (args.samples, args.seed);
    let (a, b) = (&la.path, &lb.path);
    let (ma, mb) = (la.transformer()?, lb.transformer()?);
    if ma.shape() != mb.shape() {
        anyhow::bail!(
            "{} and {}: different transformer architectures (vocab, width, heads, context, mask or blocks); the metrics compare models of one architecture",
            a.display(),
            b.display()
        );
    }
    let positions = positions_for(ma, args.positions);
    let prepared = prepare_all(&[ma, mb], positions, la)?;
    let start = Instant::now();
    let sim = tensim_core::similarity(&prepared[0], &prepared[1], Par::Seq)
        .with_context(|| format!("comparing {} with {}", a.display(), b.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let exactness = prepared[0].exactness().combine(prepared[1].exactness());
    let cosine = parameter_cosine(&ma.parameters(), &mb.parameters())
        .with_context(|| format!("comparing {} with {}", a.display(), b.display()))?;
    let mc = if samples >= 2 {
        Some(sequence_monte_carlo(ma, mb, positions, samples, seed)?)
    } else {
        None
    };
    let mut ranked: Vec<(usize, f64)> = sim.per_output.iter().copied().enumerate().collect();
    ranked.sort_by(|x, y| x.1.total_cmp(&y.1));
    if json_out {
        let doc = json!({
            "a": a.display().to_string(),
            "b": b.display().to_string(),
            "kind": "transformer",
            "positions": positions,
            "values": {
                "gaussian": sim.total,
                "matrix_cosine": cosine,
                "monte_carlo": mc.map(|e| json!({"value": e.value, "std_error": e.std_error, "samples": e.samples})),
            },
            "gaussian_exact": exactness.is_exact(),
            "gaussian_exactness": exactness.describe(),
            "per_token": {"gaussian": sim.per_output},
            "seconds": seconds,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    outln!("a: {} ({})", a.display(), la.label());
    outln!("b: {} ({})", b.display(), lb.label());
    outln!(
        "transformer: vocab {} → {} logits, d_model {}, {} block(s), context {}; Gaussian input on {positions} positions\n",
        ma.vocab(),
        ma.outputs(),
        ma.d_model(),
        ma.blocks().len(),
        ma.context()
    );
    outln!("{:<34} {:>10}", "metric", "value");
    outln!("{}", "-".repeat(46));
    outln!(
        "{:<34} {:>10.6}  ({}, {seconds:.2} s)",
        "gaussian (uncentred)",
        sim.total,
        exactness.describe()
    );
    if let Some(e) = mc {
        outln!(
            "{:<34} {:>10.6}  ± {:.6} ({} samples)",
            "gaussian, Monte-Carlo",
            e.value,
            e.std_error,
            e.samples
        );
    }
    outln!("{:<34} {:>10.6}", "matrix cosine (all parameters)", cosine);
    outln!("\nleast similar output tokens (gaussian slice):");
    for (c, v) in ranked.iter().take(5) {
        outln!("  token {c:>3}: {v:.6}");
    }
    Ok(())
}
