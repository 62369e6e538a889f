//! Times the exact Gaussian similarity of one pair of random transformers:
//! `cargo run --release -p tensim-core --example sequence_pair -- LAYERS POSITIONS`.

use std::sync::Arc;
use std::time::Instant;

use faer::Par;
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::similarity::similarity;
use tensim_core::transformer::TransformerShape;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let layers = args.first().copied().unwrap_or(1);
    let positions = args.get(1).copied().unwrap_or(4);
    let shape = TransformerShape::benchmark(layers);
    let a = shape.random_model(1)?;
    let b = shape.random_model(2)?;
    let t = Instant::now();
    let geometry = Arc::new(SequenceGeometry::new(&shape, positions)?);
    let pa = SequencePrepared::new(&a, geometry.clone())?;
    let pb = SequencePrepared::new(&b, geometry.clone())?;
    let cold = similarity(&pa, &pb, Par::Seq)?;
    println!(
        "cold pair {:.3} s, {} plans",
        t.elapsed().as_secs_f64(),
        geometry.plans_built()
    );
    let t = Instant::now();
    let pb = SequencePrepared::new(&b, geometry.clone())?;
    println!("prepare {:.3} s", t.elapsed().as_secs_f64());
    for _ in 0..3 {
        let t = Instant::now();
        let warm = similarity(&pa, &pb, Par::Seq)?;
        println!(
            "warm pair {:.3} s, cosine {:.12} (cold {:.12})",
            t.elapsed().as_secs_f64(),
            warm.total,
            cold.total
        );
    }
    Ok(())
}
