//! Writes random transformer checkpoints at the paper's language-model size
//! (or the benchmark size), for timing `tensim compare` and `tensim matrix`
//! as whole processes:
//! `cargo run --release -p tensim-io --example random_transformers -- DIR LAYERS COUNT [benchmark]`.

use std::path::PathBuf;

use tensim_core::transformer::TransformerShape;
use tensim_io::{save_checkpoint, CheckpointMeta, StoredDtype};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().ok_or("usage: DIR LAYERS COUNT [benchmark]")?);
    let layers: usize = args.get(1).map_or(Ok(1), |a| a.parse())?;
    let count: u64 = args.get(2).map_or(Ok(2), |a| a.parse())?;
    let shape = if args.get(3).is_some_and(|a| a == "benchmark") {
        TransformerShape::benchmark(layers)
    } else {
        TransformerShape::paper(layers)
    };
    std::fs::create_dir_all(&dir)?;
    for seed in 0..count {
        let model = shape.random_model(seed)?;
        let meta = CheckpointMeta {
            step: Some(seed),
            ..CheckpointMeta::default()
        };
        let path = dir.join(format!("step-{seed}.safetensors"));
        save_checkpoint(&path, &model.into(), &meta, StoredDtype::F32)?;
        println!("{}", path.display());
    }
    Ok(())
}
