//! Rough timing of the exact sequence metric (the real numbers come from `tensim bench`).
use std::sync::Arc;
use std::time::Instant;

use faer::Par;
use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
use tensim_core::transformer::{BlockShape, Mask, TransformerShape};

fn main() {
    let layers: usize = std::env::args().nth(1).map_or(1, |s| s.parse().unwrap());
    let mlp = std::env::args().nth(2).map_or(true, |s| s == "mlp");
    let shape = TransformerShape {
        vocab: 64,
        d_model: 32,
        heads: 2,
        head_dim: 16,
        context: 8,
        mask: Mask::Causal,
        rotary_base: 1e4,
        blocks: vec![
            BlockShape {
                attention_bias: false,
                attention_residual: 0.35,
                mlp: mlp.then_some((64, false, 0.35)),
            };
            layers
        ],
    };
    let t = Instant::now();
    let geometry = Arc::new(SequenceGeometry::new(&shape, 8).unwrap());
    let a = shape.random_model(1).unwrap();
    let b = shape.random_model(2).unwrap();
    let pa = SequencePrepared::new(&a, geometry.clone()).unwrap();
    println!("prepare a (cold): {:.2}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let pb = SequencePrepared::new(&b, geometry.clone()).unwrap();
    println!("prepare b (warm): {:.2}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let s = tensim_core::similarity(&pa, &pb, Par::Seq).unwrap();
    println!(
        "pair: {:.2}s  sim {:.6}  plans {}",
        t.elapsed().as_secs_f64(),
        s.total,
        geometry.plans_built()
    );
}
