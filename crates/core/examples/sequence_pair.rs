//! Times the exact Gaussian similarity of one pair of random transformers
//! beside its cost model:
//! `cargo run --release -p tensim-core --example sequence_pair -- LAYERS POSITIONS [paper]`
//! (`paper`: the paper's language-model size, else the benchmark size).

use std::sync::Arc;
use std::time::Instant;

use faer::Par;
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::similarity::similarity;
use tensim_core::transformer::TransformerShape;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let layers = args.first().map_or(Ok(1), |a| a.parse())?;
    let positions = args.get(1).map_or(Ok(4), |a| a.parse())?;
    let shape = if args.get(2).is_some_and(|a| a == "paper") {
        TransformerShape::paper(layers)
    } else {
        TransformerShape::benchmark(layers)
    };
    let a = shape.random_model(1)?;
    let b = shape.random_model(2)?;
    let t = Instant::now();
    let geometry = Arc::new(SequenceGeometry::new(&shape, positions)?);
    let pair = geometry.pair_cost();
    let prepare = geometry.prepare_cost();
    println!(
        "geometry and plans {:.3} s; pair {:.1} GFLOP ({:.1} in {} networks), prepare {:.1} GFLOP, largest intermediate {} entries, model {:.0} MiB, peak estimate {:.0} MiB",
        t.elapsed().as_secs_f64(),
        pair.flops() / 1e9,
        pair.contraction_flops / 1e9,
        pair.networks,
        prepare.flops() / 1e9,
        pair.largest_intermediate.max(prepare.largest_intermediate),
        geometry.model_bytes() / 1048576.0,
        geometry.peak_bytes(2) / 1048576.0,
    );
    let t = Instant::now();
    let pa = SequencePrepared::new(&a, geometry.clone())?;
    let seconds = t.elapsed().as_secs_f64();
    println!(
        "prepare {seconds:.3} s ({:.2} GFLOP/s)",
        prepare.flops() / seconds / 1e9
    );
    let pb = SequencePrepared::new(&b, geometry.clone())?;
    for _ in 0..3 {
        let t = Instant::now();
        let warm = similarity(&pa, &pb, Par::Seq)?;
        let seconds = t.elapsed().as_secs_f64();
        println!(
            "pair {seconds:.3} s ({:.2} GFLOP/s), cosine {:.12}",
            pair.flops() / seconds / 1e9,
            warm.total,
        );
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            println!(
                "peak resident memory: {}",
                line.trim_start_matches("VmHWM:").trim()
            );
        }
    }
    Ok(())
}
